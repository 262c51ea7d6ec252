"""3D volumes (NIfTI): reading, the one slice convention, intensity mapping, writing label volumes.

The slice convention: a slice looks as a DICOM viewer shows it (radiological display), whatever
order the file stores its axes in. The volume is turned, without resampling, so that its array
axes run (slice, row, column) along patient directions:

- axial: slices inferior → superior; rows anterior → posterior (anterior at the top); columns
  the patient's right → left (the patient's right on the image's left);
- coronal: slices anterior → posterior; rows superior → inferior; columns right → left;
- sagittal: slices right → left; rows superior → inferior; columns anterior → posterior.

The turn is a permutation and flips of the array axes, read from the affine (nibabel's
``io_orientation``: for an oblique affine, the nearest axes). Applying its inverse to a label
volume puts it back on the input's own grid: same shape, same voxel order.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from flexseg.config import PERCENTILES
from flexseg.errors import ConfigError, DataError

if TYPE_CHECKING:
    import nibabel as nib

VOLUME_SUFFIXES = (".nii.gz", ".nii")
# nibabel axis codes of the (slice, row, column) axes: each names the direction its index grows to
PLANE_AXES = {"axial": ("S", "P", "L"), "coronal": ("P", "I", "L"), "sagittal": ("L", "I", "P")}
OBLIQUE_DEGREES = 1.0  # an affine further than this from the nearest axes is reported


def is_volume(path: Path) -> bool:
    return path.name.lower().endswith(VOLUME_SUFFIXES)


def volume_stem(path: Path) -> str:
    """``case_001.nii.gz`` → ``case_001``."""
    name = path.name
    for suffix in VOLUME_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


@dataclass
class Volume:
    """A volume as read: its voxels in storage order and the image they came from (affine, header)."""

    path: Path
    data: np.ndarray  # (x, y, z) in the file's own voxel order
    image: nib.Nifti1Image
    mapped: bool = False  # data already 8-bit, each slice by its own DICOM display window

    @property
    def affine(self) -> np.ndarray:
        return self.image.affine

    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along the storage axes."""
        return tuple(float(v) for v in np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0)))

    def obliquity_degrees(self) -> float:
        """The largest angle between a voxel axis and the patient axis nearest to it."""
        import nibabel as nib

        return float(np.degrees(np.max(np.abs(nib.affines.obliquity(self.affine)))))


def read_volume(path: Path) -> Volume:
    """A NIfTI volume; a named DataError for anything that is not a readable 3D volume."""
    import nibabel as nib

    try:
        image = nib.load(str(path))  # the header only
        _check_size(path, image.shape)
        _check_type_and_memory(path, image)
        data = np.asanyarray(image.dataobj)
    except (DataError, ConfigError):
        raise
    except MemoryError:
        raise DataError(f"{path}: not enough memory to read this volume; crop or downsample it") from None
    except FileNotFoundError:
        raise DataError(f"{path}: no such volume") from None
    except Exception as e:  # nibabel raises many types (ImageFileError, EOFError, zlib.error, ValueError)
        raise DataError(f"{path}: not a readable NIfTI volume ({type(e).__name__}: {str(e)[:160]})") from None
    return checked_volume(path, data, image)


def volume_of_image(image: nib.spatialimages.SpatialImage, name: str = "image") -> Volume:
    """A volume from a nibabel image in memory (NIfTI-1/2 or any image with an affine), checked
    as a file's is; ``name`` stands for it in messages."""
    import nibabel as nib

    if not isinstance(image, nib.Nifti1Image):  # Nifti2, MGH, ...: the same voxels and affine
        image = nib.Nifti1Image(np.asanyarray(image.dataobj), image.affine)
    return checked_volume(Path(name), np.asanyarray(image.dataobj), image)


def checked_volume(path: Path, data: np.ndarray, image: nib.Nifti1Image) -> Volume:
    """``data`` of ``image`` as a Volume: one channel in 3D, a valid affine; else a DataError."""
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3 or min(data.shape) < 1:
        raise DataError(f"{path}: a volume of shape {data.shape}; flexseg takes 3D volumes (one channel)")
    if not np.isfinite(image.affine).all() or abs(np.linalg.det(image.affine[:3, :3])) < 1e-12:
        raise DataError(f"{path}: its affine is not a valid voxel-to-patient transform")
    return Volume(path=path, data=data, image=image)


def class_indices(volume: Volume, num_classes: int) -> np.ndarray:
    """A label volume's voxels as uint8 class indices 0..num_classes-1 (0 = background), in
    storage order; a DataError names a volume that holds anything else."""
    data = np.asarray(volume.data)
    if not np.issubdtype(data.dtype, np.integer):
        rounded = np.rint(data)
        if not np.array_equal(rounded, data):
            raise DataError(f"{volume.path}: not a label volume (it holds non-integer values)")
        data = rounded
    low, high = (float(data.min()), float(data.max())) if data.size else (0.0, 0.0)
    if low < 0 or high >= num_classes:
        raise DataError(
            f"{volume.path}: holds label {high if high >= num_classes else low:g}; a label volume holds class "
            f"indices 0..{num_classes - 1} (0 = background)"
        )
    return data.astype(np.uint8)


def check_same_grid(volume: Volume, reference: Volume) -> None:
    """Refuse a volume that does not match ``reference`` voxel for voxel (shape and affine)."""
    if volume.data.shape != reference.data.shape or not np.allclose(volume.affine, reference.affine, atol=1e-3):
        raise DataError(
            f"{volume.path.name} is not on the grid of {reference.path} (shape {volume.data.shape} vs "
            f"{reference.data.shape}, or another affine); it must match voxel for voxel: resample it onto that grid"
        )


MAX_VOXELS = 1 << 31  # 2 G voxels: 8 GB as float32, far beyond any CT or MR series


def _check_size(path: Path, shape: tuple[int, ...]) -> None:
    """From the header, before any voxel is read: no slice over $FLEXSEG_MAX_PIXELS, no volume
    over MAX_VOXELS (a gzipped NIfTI of a few KB can claim terabytes)."""
    from flexseg.data.io import check_pixels

    if len(shape) >= 3:
        x, y, z = (int(v) for v in shape[:3])
        for width, height in ((x, y), (x, z), (y, z)):
            check_pixels(path, width, height)
        voxels = int(np.prod([int(v) for v in shape]))
        if voxels > MAX_VOXELS:
            raise DataError(
                f"{path}: {'×'.join(str(int(v)) for v in shape)} voxels is over the limit of {MAX_VOXELS:,}; not read"
            )


def working_bytes(voxels: int, itemsize: int) -> int:
    """What reading and inferring one volume holds per voxel, as measured: the voxels as read, one
    copy of them (the finite values for percentiles), and four bytes of 8-bit slices, labels and
    their reordered copy."""
    return voxels * (2 * itemsize + 4)


def _check_type_and_memory(path: Path, image: nib.Nifti1Image) -> None:
    """A volume of numbers, and one whose voxels fit in the memory budget (flexseg.memory), both
    from the header before any voxel is read."""
    from flexseg.memory import check_fits

    dtype = image.get_data_dtype()
    if dtype.kind not in "biuf" or dtype.fields is not None:
        what = {"c": "complex numbers", "V": "RGB or other structured voxels"}.get(dtype.kind, f"{dtype} voxels")
        raise DataError(f"{path}: a volume of {what}; flexseg reads volumes of one real number per voxel (grey)")
    slope, inter = image.header.get_slope_inter()
    scaled = slope not in (None, 1.0) or inter not in (None, 0.0)
    itemsize = 8 if scaled or dtype.kind == "f" and dtype.itemsize > 4 else max(dtype.itemsize, 1)
    voxels = int(np.prod([int(v) for v in image.shape]))
    check_fits(
        path, working_bytes(voxels, itemsize), f"a volume of {voxels:,} voxels ({dtype}{', scaled' if scaled else ''})"
    )


def _orientation(affine: np.ndarray, plane: str) -> tuple[np.ndarray, np.ndarray]:
    """The nibabel orientation transforms storage → display and display → storage."""
    import nibabel.orientations as no

    start = no.io_orientation(affine)
    end = no.axcodes2ornt(PLANE_AXES[plane])
    return no.ornt_transform(start, end), no.ornt_transform(end, start)


def to_display(data: np.ndarray, affine: np.ndarray, plane: str) -> np.ndarray:
    """The volume turned to (slice, row, column) of the slice convention (a view, no copy)."""
    import nibabel.orientations as no

    forward, _ = _orientation(affine, plane)
    return no.apply_orientation(data, forward)


def from_display(display: np.ndarray, affine: np.ndarray, plane: str) -> np.ndarray:
    """A (slice, row, column) array back in the storage order of the volume ``affine`` describes."""
    import nibabel.orientations as no

    _, back = _orientation(affine, plane)
    return np.ascontiguousarray(no.apply_orientation(display, back))


def display_spacing(volume: Volume, plane: str) -> tuple[float, float, float]:
    """Voxel size in mm along (slice, row, column)."""
    forward, _ = _orientation(volume.affine, plane)
    spacing = volume.spacing()
    order = [0, 0, 0]
    for storage_axis, (display_axis, _) in enumerate(forward):
        order[int(display_axis)] = storage_axis
    return tuple(spacing[a] for a in order)


def display_pixels(volume: Volume, mapping: dict) -> np.ndarray:
    """The volume as 8-bit (slice, row, column) slices, mapped as ``mapping`` says."""
    display = to_display(volume.data, volume.affine, mapping["plane"])
    if volume.mapped:
        if mapping.get("window") != "header":
            raise DataError(f"{volume.path}: slices mapped by their DICOM windows, but the model was not trained so")
        return np.asarray(display, np.uint8)
    return intensity_to_uint8(display, mapping)


def slice_channels(pixels: np.ndarray, index: int, context: int, channels: int) -> np.ndarray:
    """Slice ``index`` of 8-bit display slices (slice, row, column) as an (row, column, channels)
    image: with ``context`` k, the slices index-k … index+k in slice order (the previous, current
    and next slice for k = 1), the edge slice repeated beyond either end; without, the slice
    repeated into ``channels``. The same for split's PNGs and infer's volumes."""
    if not context:
        return np.repeat(pixels[index][..., None], channels, axis=-1)
    last = len(pixels) - 1
    return np.stack([pixels[min(max(index + d, 0), last)] for d in range(-context, context + 1)], axis=-1)


SLAB = 16  # slices mapped at a time: float temporaries for 16 slices, not for the whole volume


def intensity_to_uint8(data: np.ndarray, mapping: dict) -> np.ndarray:
    """Voxel values → 0..255: through the CT window [centre, width] when the mapping has one,
    else between the volume's own low and high percentiles (MR). Mapped a slab of slices (first
    axis) at a time, so memory is the input, its 8-bit copy and one slab of floats."""
    if mapping.get("window") == "header":
        return _as_header_window(data, mapping)
    if mapping.get("window"):
        centre, width = mapping["window"]
        low, high = centre - width / 2.0, centre + width / 2.0
    else:
        low, high = _percentiles(data, mapping.get("percentiles") or PERCENTILES)
    scale = 255.0 / max(high - low, 1e-6)
    return _slabwise(data, lambda values: np.rint(np.clip((np.nan_to_num(values, nan=low) - low) * scale, 0, 255)))


def _slabwise(data: np.ndarray, to_pixels: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``to_pixels`` (float32 values → 0..255) applied a slab of SLAB slices (first axis) at a
    time, so memory is the input, its 8-bit copy and one slab of floats."""
    mapped = np.empty(np.shape(data), np.uint8)
    for start in range(0, max(len(mapped), 1), SLAB):
        mapped[start : start + SLAB] = to_pixels(np.asarray(data[start : start + SLAB], dtype=np.float32))
    return mapped


def _as_header_window(data: np.ndarray, mapping: dict) -> np.ndarray:
    """A volume without DICOM headers (a NIfTI) for a model trained on DICOM slices mapped by their
    own display windows: by the one window those slices shared (recorded with the model, DICOM's
    linear formula, a slab at a time); refused when they did not share one."""
    from flexseg.data.io import dicom_linear

    window = mapping.get("header_window")
    if window is None:
        why = (
            f"its training slices used {mapping['header_windows']} different windows"
            if mapping.get("header_windows")
            else "it was trained before flexseg recorded the window its slices used"
        )
        raise DataError(
            "this model maps each DICOM slice by the slice's own display window (volume.window: header), and "
            f"this volume has none (a NIfTI file); {why}. Infer on the DICOM series (--volumes), or train with "
            "a fixed volume.window (a CT preset or [centre, width]) or percentiles"
        )
    inverted = bool(mapping.get("header_inverted"))

    def to_pixels(values: np.ndarray) -> np.ndarray:  # as io.read_dicom scales a slice
        scaled = dicom_linear(values, *window)
        return (np.nan_to_num(1.0 - scaled if inverted else scaled) * 255.0 + 0.5).astype(np.uint8)

    return _slabwise(data, to_pixels)


def _percentiles(data: np.ndarray, percentiles: tuple[float, float]) -> tuple[float, float]:
    """The low and high percentiles of the finite voxels, on one copy in the data's own type."""
    values = np.asarray(data)
    if values.dtype.kind == "f":
        values = values[np.isfinite(values)]
    if not values.size:
        raise DataError("a volume with no finite voxel value")
    low, high = np.percentile(values, percentiles)
    return float(low), float(high)


def label_volume(labels: np.ndarray, like: Volume) -> nib.Nifti1Image:
    """A NIfTI image of uint8 class indices on ``like``'s grid: its shape, voxel order, affine
    and qform/sform with their codes; no intensity scaling."""
    import nibabel as nib

    if labels.shape != like.data.shape:
        raise ValueError(f"labels of shape {labels.shape} for a volume of shape {like.data.shape}")
    header = like.image.header.copy()
    out = nib.Nifti1Image(labels.astype(np.uint8), like.affine, header=header)
    out.set_data_dtype(np.uint8)
    qform, qcode = like.image.get_qform(coded=True)
    sform, scode = like.image.get_sform(coded=True)
    out.set_qform(qform if qform is not None else like.affine, code=int(qcode or 0))
    out.set_sform(sform if sform is not None else like.affine, code=int(scode or 0))
    out.header.set_slope_inter(1.0, 0.0)
    out.header["descrip"] = b"flexseg label volume (class indices)"
    return out


def label_volume_bytes(labels: np.ndarray, like: Volume) -> bytes:
    """``label_volume`` as a gzipped NIfTI file's bytes (what infer writes)."""
    return gzip.compress(label_volume(labels, like).to_bytes(), compresslevel=6, mtime=0)
