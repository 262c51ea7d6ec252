"""What ``Predictor.segment`` is given, recognised and read as ``flexseg infer`` reads files:
an image array or file, a NIfTI file or nibabel image, a DICOM series (a folder, or pydicom
Datasets in memory)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from flexseg.errors import DataError


def image_array(image: np.ndarray, channels: int) -> np.ndarray:
    """An image array (H, W) or (H, W, 1-4), RGB order, any bit depth, as the model reads it:
    uint8 with ``channels`` channels, exactly as ``io.read_image`` turns a file into pixels."""
    from flexseg.data.io import as_channels

    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] > 4:
        raise DataError(
            f"an array of shape {image.shape} is not an image (H, W, 1-4 channels); for a volume pass a nibabel "
            "image, e.g. nibabel.Nifti1Image(array, affine), so its slices are cut as in training"
        )
    if image.size == 0:
        raise DataError(f"an empty image array (shape {image.shape})")
    return as_channels(image, channels)


def classify(source: object, channels: int) -> tuple[str, object]:
    """(kind, what to predict) of one input: ("image", uint8 array), ("volume", Volume) or
    ("series", Series); a DataError naming what it is when it is none of them."""
    if isinstance(source, np.ndarray):
        return "image", image_array(source, channels)
    if isinstance(source, str | os.PathLike):
        return _from_path(Path(source), channels)
    if hasattr(source, "affine") and hasattr(source, "dataobj"):  # a nibabel image
        from flexseg.data.volumes import volume_of_image

        return "volume", volume_of_image(source)
    if isinstance(source, list | tuple) and source and all(hasattr(d, "SOPInstanceUID") for d in source):
        from flexseg.data.dicom_series import series_of_datasets

        return "series", series_of_datasets(list(source))
    raise DataError(
        f"cannot segment a {type(source).__name__}: pass a NumPy image array, a path (image file, NIfTI volume, "
        "folder of one DICOM series), a nibabel image or a list of pydicom Datasets of one series"
    )


def _from_path(path: Path, channels: int) -> tuple[str, object]:
    from flexseg.data.io import RAW_IMAGE_SUFFIXES, is_dicom, read_image
    from flexseg.data.volumes import is_volume, read_volume

    if path.is_dir():
        from flexseg.data.dicom_series import group_series

        series = group_series(sorted(p for p in path.iterdir() if p.is_file() and is_dicom(p)))
        if len(series) != 1:
            raise DataError(f"{path}: holds {len(series)} DICOM series; pass a folder of one series")
        return "series", series[0]
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if is_volume(path):
        return "volume", read_volume(path)
    if path.suffix.lower() in RAW_IMAGE_SUFFIXES:
        return "image", read_image(path, channels)
    raise DataError(f"{path}: not an image (png, jpg, tif, bmp, dcm) or a volume (nii, nii.gz)")
