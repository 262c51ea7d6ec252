"""The fingerprint of a raw folder of images and masks: what `flexseg plan` plans from.

Everything here is read from the data (headers first, pixels of a sample), nothing is decided:
the decisions are in ``planning.rules``. The fingerprint is written as JSON beside the planned
experiment, so a user sees the statistics behind every choice.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from flexseg.config import MASK_TOLERANCE, PERCENTILES
from flexseg.data.classes import ClassMap
from flexseg.data.io import (
    RAW_IMAGE_SUFFIXES,
    dicom_header,
    dicom_values,
    header_window,
    image_size,
    is_dicom,
    list_images,
    read_image,
    read_mask,
)
from flexseg.data.pairing import Pairing, pair_files, pair_volume_folders
from flexseg.data.volumes import is_volume, read_volume, to_display
from flexseg.errors import DataError
from flexseg.planning.colours import FoundClasses, find_classes_in

# the pairing rules tried, in order of preference: a rule that pairs by a key the files carry
# beats one that pairs by position (natural order pairs any two folders of equal size)
LAST_NUMBER = r"(\d+)\D*$"  # the last number in the name: Mask_013.png → 13
PAIRING_RULES = (("stem", None), ("instance_number", None), ("regex", LAST_NUMBER), ("natural", None))
# file-name patterns that may name a patient, tried in order on every image name
GROUP_PATTERNS = (r"^([A-Za-z]*\d+)[ _.-]", r"^(.+?)[ _.-]*\(?\d+\)?\.\w+$")
MAX_MASKS = 200  # masks read for their colours (evenly spaced over the folder)
MAX_IMAGES = 40  # images read for their channels and intensities
MAX_VOLUMES = 10  # volumes read for intensities and labels
CT_AIR_HU = -500.0  # a volume whose 0.5th percentile is below this is CT in Hounsfield units


@dataclass
class Fingerprint:
    """What a raw folder holds, as JSON (``<experiment>.fingerprint.json``)."""

    images: str
    masks: str
    kind: str  # "images" (PNG/JPEG/TIFF/BMP), "dicom" (single DICOM slices) or "volumes" (NIfTI)
    pairs: int
    samples: int  # 2D training samples: pairs, or all slices of the volumes
    pairing: dict  # rule, image_pattern, and what each rule tried gave
    size: dict  # median, min, max [width, height] of the (in-plane) images
    channels: int  # 1: grey images (all channels equal), 3: colour
    modality: str  # CT, MR, or the DICOM Modality; "image" for PNG/JPEG
    intensity: dict  # what the intensity mapping is planned from (HU percentiles, header windows)
    classes: dict  # colours (background first), pixel shares, distinct colours, far pixels
    groups: dict  # how groups (patients) were found, their count, and the pattern or CSV rows
    spacing_mm: list[float] | None = None  # in-plane pixel size, when the files say
    sampled: dict = field(default_factory=dict)  # how many files of each kind were read

    def to_json(self) -> dict:
        data = asdict(self)
        data["groups"] = {k: v for k, v in self.groups.items() if k != "rows"}  # the CSV holds them
        return data


def take_fingerprint(images_dir: Path, masks_dir: Path, tolerance: float = MASK_TOLERANCE) -> Fingerprint:
    """Read ``images_dir`` and ``masks_dir`` as `flexseg split` would and describe them.

    Raises a DataError when the folders hold nothing to pair, or when no pairing rule pairs
    every file (the message lists what each rule gave)."""
    for folder in (images_dir, masks_dir):
        if not folder.is_dir():
            raise DataError(f"{folder}: folder not found")
    if any(is_volume(p) for p in images_dir.iterdir()):
        return _volume_fingerprint(images_dir, masks_dir)
    images = list_images(images_dir, RAW_IMAGE_SUFFIXES)
    masks = list_images(masks_dir)
    if not images:
        raise DataError(f"{images_dir}: no images (png, jpg, tif, bmp, dcm) in this folder")
    if not masks:
        raise DataError(f"{masks_dir}: no masks (png, jpg, tif, bmp) in this folder")
    dicom = [p for p in images if is_dicom(p)]
    if dicom and len(dicom) != len(images):
        raise DataError(f"{images_dir}: holds both DICOM and other images; keep one kind per folder")
    rule, pattern, pairing, tried = find_pairing(images, masks, bool(dicom))
    pairs = pairing.pairs
    sizes = np.array([image_size(image) for image, _ in pairs])
    mismatched = [(i.name, m.name) for (i, m), wh in zip(pairs, sizes) if tuple(image_size(m)) != tuple(wh)]
    if mismatched:
        raise DataError(
            f"pairing by {rule} pairs files of different sizes ({mismatched[0][0]} ↔ {mismatched[0][1]} and "
            f"{len(mismatched) - 1} more): they are not pairs; name the files so that one rule pairs them"
        )
    mask_sample = _evenly([m for _, m in pairs], MAX_MASKS)
    found = find_classes_in([read_mask(m) for m in mask_sample], tolerance)
    if len(found.colors) < 2:
        raise DataError(f"{masks_dir}: the masks hold one colour only; nothing to segment")
    image_sample = _evenly(pairs, MAX_IMAGES)
    headers = [dicom_header(i) for i, _ in image_sample] if dicom else []
    fingerprint = Fingerprint(
        images=str(images_dir),
        masks=str(masks_dir),
        kind="dicom" if dicom else "images",
        pairs=len(pairs),
        samples=len(pairs),
        pairing={"rule": rule, "image_pattern": pattern, "tried": tried},
        size=_size_summary(sizes),
        channels=1 if dicom or all(_is_grey(read_image(i, None)) for i, _ in image_sample) else 3,
        modality=_dicom_modality(headers) if dicom else "image",
        intensity=_dicom_intensity(image_sample, headers, found.colors) if dicom else {},
        classes=_classes_json(found, len(mask_sample)),
        groups=_dicom_groups(pairs) if dicom else _name_groups([i for i, _ in pairs]),
        spacing_mm=_dicom_spacing(headers),
        sampled={"masks": len(mask_sample), "images": len(image_sample)},
    )
    return fingerprint


def find_pairing(images: list[Path], masks: list[Path], dicom: bool) -> tuple[str, str | None, Pairing, dict]:
    """The first rule of PAIRING_RULES that pairs every image with a mask, its regex, the pairs, and
    what every rule tried gave; a DataError listing them when none pairs every file."""
    tried: dict[str, str] = {}
    unpaired: dict[str, str] = {}
    chosen = None
    for rule, pattern in PAIRING_RULES:
        if rule == "instance_number" and not dicom:
            continue
        name = "last number" if rule == "regex" else rule
        try:
            pairing = pair_files(images, masks, rule, pattern, pattern)
        except DataError as e:
            tried[name] = str(e)[:200]
            continue
        if pairing.complete and pairing.pairs:
            tried[name] = f"pairs all {len(pairing.pairs)}" + (" (by position)" if rule == "natural" else "")
            chosen = chosen or (rule, pattern, pairing)
        else:
            tried[name] = f"pairs {len(pairing.pairs)} of {len(images)}"
            unpaired[name] = pairing.describe_unpaired()
    if chosen is None:
        raise DataError(
            f"no pairing rule pairs every image with a mask ({len(images)} images, {len(masks)} masks): "
            + "; ".join(
                f"{rule}: {what}" + (f" ({unpaired[rule]})" if rule in unpaired else "") for rule, what in tried.items()
            )
            + ". Rename the files so that their names match, or write split.pairing: regex by hand"
        )
    return chosen[0], chosen[1], chosen[2], tried


def _evenly(items: list, n: int) -> list:
    if len(items) <= n:
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, n).round().astype(int)]


def _size_summary(sizes: np.ndarray) -> dict:
    return {
        "median": [int(np.median(sizes[:, 0])), int(np.median(sizes[:, 1]))],
        "min": [int(sizes[:, 0].min()), int(sizes[:, 1].min())],
        "max": [int(sizes[:, 0].max()), int(sizes[:, 1].max())],
    }


def _is_grey(image: np.ndarray) -> bool:
    return image.shape[-1] == 1 or bool((image == image[..., :1]).all())


def _classes_json(found: FoundClasses, sampled: int) -> dict:
    return {
        "colors": [list(c) for c in found.colors],
        "pixel_shares": [round(s, 6) for s in found.shares],
        "distinct_colors": found.distinct_colors,
        "far_pixels": found.far_pixels,
        "inexact_pixels": found.inexact_pixels,
        "total_pixels": found.total_pixels,
        "tolerance": found.tolerance,
        "masks_read": sampled,
    }


def _foreground(mask_rgb: np.ndarray, colors: list) -> np.ndarray:
    """Pixels nearest to a class colour other than the first (the background), as split maps them."""
    return ClassMap([str(i) for i in range(len(colors))], [tuple(c) for c in colors]).to_indices(mask_rgb).indices > 0


def _dicom_modality(headers: list) -> str:
    found = Counter(str(h.get("Modality", "") or "unknown").upper() for h in headers)
    return found.most_common(1)[0][0]


def _dicom_intensity(sample: list[tuple[Path, Path]], headers: list, colors: list) -> dict:
    windows = Counter()
    foreground = []
    for (image, mask), header in zip(sample, headers):
        window = header_window(image, header)
        windows[None if window is None else (round(window[0], 3), round(window[1], 3))] += 1
        values, _ = dicom_values(image)
        fg = _foreground(read_mask(mask), colors)
        if fg.shape == values.shape and fg.any():
            foreground.append(values[fg])
    values = np.concatenate(foreground) if foreground else np.zeros(0)
    return {
        "header_windows": [
            {"center": w[0], "width": w[1], "files": n} if w else {"none": True, "files": n}
            for w, n in windows.most_common()
        ],
        "foreground_percentiles": _percentiles(values),
    }


def _percentiles(values: np.ndarray) -> dict | None:
    if not values.size:
        return None
    lo, hi = np.percentile(values, PERCENTILES)
    return {"p0.5": round(float(lo), 3), "p99.5": round(float(hi), 3), "voxels": int(values.size)}


def _dicom_spacing(headers: list) -> list[float] | None:
    for header in headers:
        try:
            return [float(v) for v in header.PixelSpacing]
        except (AttributeError, TypeError, ValueError):
            continue
    return None


def _dicom_groups(pairs: list[tuple[Path, Path]]) -> dict:
    """Patients of DICOM slices from PatientID (split takes them as a groups CSV)."""
    patients = {image.name: str(dicom_header(image).get("PatientID", "") or "") for image, _ in pairs}
    distinct = sorted(set(patients.values()))
    if "" in distinct or len(distinct) < 2:
        note = (
            "all slices are of one patient"
            if len(distinct) == 1 and "" not in distinct
            else "no PatientID in some headers"
        )
        return {"how": "each file", "count": len(pairs), "note": note}
    return {"how": "PatientID", "count": len(distinct), "rows": patients}


def _name_groups(images: list[Path]) -> dict:
    """Patients from file names: the first of GROUP_PATTERNS that matches every name and gives
    groups of several files each; else each file is its own group."""
    notes = []
    for pattern in GROUP_PATTERNS:
        rx = re.compile(pattern)
        matches = [rx.search(p.name) for p in images]
        if not all(matches):
            continue
        groups = Counter(m.group(1) for m in matches)
        if len(groups) == 1:
            notes.append(f"every name starts with {next(iter(groups))!r}")
            continue
        if len(groups) > len(images) / 2:
            notes.append(f"a name prefix gives {len(groups)} groups for {len(images)} files")
            continue
        return {"how": "file name", "pattern": pattern, "count": len(groups)}
    note = "; ".join(dict.fromkeys(notes)) or "no pattern matches every name"
    return {"how": "each file", "count": len(images), "note": f"no patient in the file names ({note})"}


# ---------------------------------------------------------------- volumes


def _volume_fingerprint(images_dir: Path, masks_dir: Path) -> Fingerprint:
    import nibabel as nib

    pairing = pair_volume_folders(images_dir, masks_dir)
    if not pairing.complete or not pairing.pairs:
        raise DataError(
            f"volumes pair by name (case.nii.gz ↔ case.nii.gz, nnU-Net's case_0000 allowed): "
            f"{pairing.describe_unpaired() or 'no pairs'}"
        )
    pairs = pairing.pairs
    sizes, slices = [], 0
    for image, _ in pairs:
        header = nib.load(str(image))
        shape = to_display(np.broadcast_to(np.zeros(1, bool), header.shape[:3]), header.affine, "axial").shape
        sizes.append((shape[2], shape[1]))
        slices += shape[0]
    sample = _evenly(pairs, MAX_VOLUMES)
    labels: Counter = Counter()
    everything, foreground, spacing = [], [], None
    for image, mask in sample:
        scan, label = read_volume(image), read_volume(mask)
        values = np.rint(np.asarray(label.data)).astype(np.int64)
        labels.update(dict(zip(*(v.tolist() for v in np.unique(values, return_counts=True)))))
        data = np.asarray(scan.data, np.float32)
        everything.append(data[:: max(1, data.shape[0] // 64)].ravel())
        if values.shape == data.shape and (values > 0).any():
            foreground.append(data[values > 0])
        spacing = spacing or [round(v, 4) for v in sorted(scan.spacing())[:2]]
    low = float(np.percentile(np.concatenate(everything), 0.5))
    ct = low < CT_AIR_HU
    total = sum(labels.values())
    values = sorted(labels)
    if values[0] < 0:
        raise DataError(f"{masks_dir}: label volumes hold negative labels; labels are class indices 0, 1, …")
    return Fingerprint(
        images=str(images_dir),
        masks=str(masks_dir),
        kind="volumes",
        pairs=len(pairs),
        samples=slices,
        pairing={"rule": "volume name", "image_pattern": None, "tried": {}},
        size=_size_summary(np.array(sizes)),
        channels=1,
        modality="CT" if ct else "MR",
        intensity={
            "p0.5_all_voxels": round(low, 3),
            "foreground_percentiles": _percentiles(np.concatenate(foreground) if foreground else np.zeros(0)),
        },
        classes={
            "labels": values,
            "pixel_shares": [round(labels[v] / total, 6) for v in values],
            "voxels": total,
            "volumes_read": len(sample),
        },
        groups={"how": "each volume", "count": len(pairs)},
        spacing_mm=spacing,
        sampled={"volumes": len(sample)},
    )
