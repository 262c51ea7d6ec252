"""DICOM-SEG: a series' label volume as a DICOM Segmentation object that references the series
(its SOP instances, frame by frame), so a PACS viewer shows the classes over the scan.

Written with highdicom, the library of the Imaging Data Commons for DICOM-SEG; it is an optional
extra (``pip install 'flexseg[dicom-seg]'``), needed only by ``infer --dicom-seg``.
"""

from __future__ import annotations

import io
import warnings
from typing import TYPE_CHECKING

import numpy as np

from flexseg import __version__
from flexseg.errors import ConfigError

if TYPE_CHECKING:
    from flexseg.data.dicom_series import Series

SERIES_NUMBER = 9901  # of the SEG series: high, so viewers list it after the scanner's series


def require_highdicom() -> None:
    """Refuse --dicom-seg before any work when highdicom is not installed."""
    import importlib.util

    if importlib.util.find_spec("highdicom") is None:
        raise ConfigError(
            "--dicom-seg needs the highdicom package: pip install 'flexseg[dicom-seg]' (or pip install highdicom)"
        )


def segmentation_bytes(series: Series, labels: np.ndarray, class_names: list[str], class_colors: list) -> bytes:
    """A binary DICOM-SEG of ``labels`` (class indices on the series' grid, voxels (column, row,
    slice) as ``dicom_series.series_volume`` stores them): one segment per foreground class, named
    and coloured as the model's classes, one frame per source slice and segment."""
    import highdicom as hd
    import pydicom
    from pydicom.sr.codedict import codes

    if labels.shape[2] != len(series.files):
        raise ValueError(f"labels of {labels.shape[2]} slices for a series of {len(series.files)} files")
    sources = [pydicom.dcmread(str(p), stop_before_pixels=True) for p in series.files]
    frames = np.ascontiguousarray(labels.transpose(2, 1, 0))  # (slice, row, column): each file's own pixels
    algorithm = hd.AlgorithmIdentificationSequence(
        name="flexseg", family=codes.cid7162.ArtificialIntelligence, version=__version__
    )
    segments = [
        hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=name[:64],
            # flexseg knows its classes by name and colour only, not by an anatomical code
            segmented_property_category=codes.SCT.Tissue,
            segmented_property_type=codes.SCT.Tissue,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
            display_color=hd.color.CIELabColor.from_rgb(*(int(v) for v in color)),
        )
        for number, (name, color) in enumerate(zip(class_names[1:], class_colors[1:]), start=1)
    ]
    with warnings.catch_warnings():  # highdicom's remarks on the source headers (e.g. a patient name's form)
        warnings.simplefilter("ignore", UserWarning)
        seg = hd.seg.Segmentation(
            source_images=sources,
            pixel_array=frames,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=segments,
            series_instance_uid=hd.UID(),
            series_number=SERIES_NUMBER,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer="flexseg",
            manufacturer_model_name="flexseg",
            software_versions=__version__,
            device_serial_number="none",
            series_description=f"flexseg {', '.join(class_names[1:])}"[:64],
            omit_empty_frames=False,  # a frame per source slice, so every slice shows the result
        )
        buffer = io.BytesIO()
        seg.save_as(buffer)
    return buffer.getvalue()
