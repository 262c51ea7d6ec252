"""DICOM series as volumes: files grouped by SeriesInstanceUID, slices ordered by their position
along the slice normal (ImagePositionPatient · (row direction × column direction)), never by
file name or InstanceNumber; tilted, uneven or missing slices are noticed and reported.

A series becomes a ``data.volumes.Volume`` whose voxels are (column, row, slice) with a RAS
affine built from the headers, so the slice convention and label volumes work as for NIfTI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from flexseg.data.io import dicom_header, dicom_values, is_dicom, read_dicom
from flexseg.data.volumes import Volume
from flexseg.errors import DataError
from flexseg.names import safe_filename

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
GAP_TOLERANCE = 0.01  # relative: gaps between slice positions that differ more are uneven


@dataclass
class Series:
    uid: str
    files: list[Path]  # in order along the slice normal
    affine: np.ndarray  # RAS, voxel (column, row, slice) → mm
    notes: list[str] = field(default_factory=list)  # what a user should know about its geometry
    size: tuple[int, int] = (0, 0)  # rows, columns of every slice
    datasets: list | None = None  # the slices' pydicom Datasets, for a series in memory (files then name them)


def group_series(files: list[Path]) -> list[Series]:
    """The DICOM files among ``files`` as series, each ordered along its slice normal."""
    by_uid: dict[str, list[tuple[Path, object]]] = {}
    for path in files:
        if not is_dicom(path):
            continue
        header = dicom_header(path)
        uid = str(header.get("SeriesInstanceUID", "")) or "no-series-uid"
        by_uid.setdefault(uid, []).append((path, header))
    return [_series(uid, members) for uid, members in sorted(by_uid.items())]


def series_of_datasets(datasets: list) -> Series:
    """One series from pydicom Datasets in memory (with their pixels), ordered along its normal;
    a DataError when they are not one series."""
    members = [(Path(f"dataset {i}"), ds) for i, ds in enumerate(datasets)]
    uids = {str(ds.get("SeriesInstanceUID", "")) or "no-series-uid" for ds in datasets}
    if len(uids) != 1:
        raise DataError(f"{len(datasets)} DICOM datasets of {len(uids)} series; pass the datasets of one series")
    series = _series(uids.pop(), members)
    by_name = {str(path): ds for path, ds in members}
    series.datasets = [by_name[str(path)] for path in series.files]
    return series


def _series(uid: str, members: list[tuple[Path, object]]) -> Series:
    first_path, first = members[0]
    try:
        orientation = np.array([float(v) for v in first.ImageOrientationPatient])
        spacing = [float(v) for v in first.PixelSpacing]  # between rows, between columns
    except (AttributeError, TypeError, ValueError):
        raise DataError(
            f"{first_path}: no ImageOrientationPatient / PixelSpacing; without them a series cannot be placed "
            "in the patient (infer these files one by one, without --volumes)"
        ) from None
    row_dir, col_dir = orientation[:3], orientation[3:]
    normal = np.cross(row_dir, col_dir)
    if (
        len(orientation) != 6
        or len(spacing) != 2
        or not np.isfinite([*orientation, *spacing]).all()
        or min(spacing) <= 0
        or abs(np.linalg.norm(normal) - 1) > 0.01
    ):
        raise DataError(
            f"{first_path}: ImageOrientationPatient {list(orientation)[:6]} / PixelSpacing {spacing[:2]} do not place "
            "the slice (not two perpendicular unit directions and positive sizes); fix the header, or infer these "
            "files one by one without --volumes"
        )
    size = _size(first_path, first)
    positions, notes = [], []
    for path, header in members:
        try:
            other = np.array([float(v) for v in header.get("ImageOrientationPatient", orientation)])
            position = np.array([float(v) for v in header.ImagePositionPatient])
        except (AttributeError, TypeError, ValueError):
            raise DataError(f"{path}: no readable ImagePositionPatient; its place in the series is unknown") from None
        if other.shape != orientation.shape or not np.allclose(other, orientation, atol=1e-3):
            raise DataError(f"{path}: its orientation differs from {first_path.name}'s; a series has one orientation")
        if _size(path, header) != size:
            raise DataError(f"{path}: {header.Rows}×{header.Columns} pixels, unlike the rest of series {uid[:64]!r}")
        if position.shape != (3,) or not np.isfinite(position).all():
            raise DataError(f"{path}: ImagePositionPatient {list(position)[:3]} is not a point; fix the header")
        positions.append(float(position @ normal))
    order = np.argsort(positions, kind="stable")
    files = [members[i][0] for i in order]
    lowest = members[order[0]][1]
    along = np.array(positions)[order]
    gaps = np.diff(along)
    if len(gaps) and (gaps <= 1e-6).any():
        k = int(np.argmax(gaps <= 1e-6))
        raise DataError(f"{files[k].name} and {files[k + 1].name} lie at the same position; two series mixed?")
    step = float(np.median(gaps)) if len(gaps) else float(first.get("SliceThickness", 1.0) or 1.0)
    if len(gaps) and np.abs(gaps - step).max() > GAP_TOLERANCE * step:
        missing = int(np.round(gaps / step).sum() - len(gaps))
        what = f"about {missing} slice(s) missing" if missing > 0 else "uneven gaps"
        notes.append(f"slices {gaps.min():.3g}–{gaps.max():.3g} mm apart ({what}); the label volume uses {step:.3g} mm")
    tilt = float(np.degrees(np.arccos(min(1.0, np.abs(normal).max() / np.linalg.norm(normal)))))
    if tilt > 1.0:
        notes.append(f"oblique: the slices are tilted {tilt:.1f}° from the nearest patient plane")
    thickness = first.get("SliceThickness")
    if thickness is not None and len(gaps) and step > 1.5 * float(thickness):
        notes.append(f"sparse: slices {step:.3g} mm apart, {float(thickness):.3g} mm thick")
    origin = np.array([float(v) for v in lowest.ImagePositionPatient])
    lps = np.eye(4)
    lps[:3, 0] = row_dir * spacing[1]  # along a row: the next column
    lps[:3, 1] = col_dir * spacing[0]  # down a column: the next row
    lps[:3, 2] = normal * step
    lps[:3, 3] = origin
    return Series(uid=uid, files=files, affine=LPS_TO_RAS @ lps, notes=notes, size=size)


def _size(path: Path, header: object) -> tuple[int, int]:
    try:
        return int(header.Rows), int(header.Columns)
    except (AttributeError, TypeError, ValueError):
        raise DataError(f"{path}: the DICOM header has no image size (Rows, Columns); not an image slice") from None


def series_volume(series: Series, header_window: bool) -> Volume:
    """The series' voxels (column, row, slice): 8-bit by each file's display window as single
    DICOM files are read (``header_window``), else the rescaled values (HU for CT)."""
    import nibabel as nib

    from flexseg.data.volumes import working_bytes
    from flexseg.memory import check_fits

    voxels = series.size[0] * series.size[1] * len(series.files)
    check_fits(series.files[0].parent, working_bytes(voxels, 4), f"a series of {voxels:,} voxels")
    slices = []
    for path, ds in zip(series.files, series.datasets or [None] * len(series.files)):
        pixels = read_dicom(path, ds)[0] if header_window else dicom_values(path, ds)[0]
        slices.append(pixels.T)  # (rows, columns) → (column, row)
    data = np.stack(slices, axis=-1)
    image = nib.Nifti1Image(data, series.affine)
    image.set_qform(series.affine, code=1)  # scanner coordinates
    image.set_sform(series.affine, code=1)
    return Volume(path=series.files[0].parent / safe_filename(series.uid), data=data, image=image, mapped=header_window)
