"""Checks on mask files that a user must hear about before training on them."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from flexseg import settings
from flexseg.data.classes import ClassMap
from flexseg.data.io import read_image, read_mask
from flexseg.errors import ConfigError, DataError

if TYPE_CHECKING:
    from flexseg.config import Experiment

MAPPING_KEYS = ("plane", "window", "percentiles", "context")


def header_windows_used(exp: Experiment) -> dict:
    """With ``volume.window: header``, the DICOM display windows the training slices were mapped by,
    as split.json records them, for the model's card: one shared window as numbers
    (``header_window`` [centre, width] and ``header_inverted``), so that a NIfTI made from the same
    series is mapped the same way; else how many different windows there were (a NIfTI then
    cannot be mapped as the slices were, and infer says so). Empty when not applicable or unknown
    (a split made before flexseg recorded windows)."""
    from flexseg.data.manifest import read_split_manifest

    if exp.volume.window != "header":
        return {}
    manifest = read_split_manifest(exp.data.split_dir("train"))
    files = manifest.files if manifest else []
    used = {(*f.dicom_window, bool(f.dicom_inverted)) for f in files if f.dicom_window}
    if len(used) == 1:
        ((centre, width, inverted),) = used
        return {"header_window": [centre, width], "header_inverted": inverted}
    return {"header_windows": len(used)} if used else {}


def check_slice_mapping(exp: Experiment) -> None:
    """The slices a model trains on were made from volumes the way the experiment says now (plane,
    window or percentiles, context): that is what the model records and ``infer`` applies to
    volumes, so a mismatch would give wrong label volumes with exit 0. Read from the split.json
    beside the train split; data prepared without ``flexseg split`` cannot be checked."""
    from flexseg.data.manifest import read_split_manifest

    split_dir = exp.data.split_dir("train")
    manifest = read_split_manifest(split_dir)
    if manifest is None:
        return
    made = manifest.volume_mapping
    wanted = exp.volume_mapping()
    if made is None:
        if wanted["context"]:
            raise ConfigError(
                f"image.context: {wanted['context']}, but {split_dir.parent / 'split.json'} lists 2D slices "
                "without neighbours; split volumes with image.context set, or set image.context: 0"
            )
        return
    made = {"context": 0, **made}
    changed = [k for k in MAPPING_KEYS if made.get(k) != wanted.get(k)]
    if changed:
        shown = "; ".join(f"{k}: {made.get(k)} in the split, {wanted.get(k)} now" for k in changed)
        raise ConfigError(
            f"the training slices were made from volumes otherwise than the experiment says ({shown}); "
            "run flexseg split again with --force, or set volume/image.context as they were"
        )


@dataclass
class MaskAudit:
    files: int = 0
    pixels: int = 0
    far_pixels: int = 0
    far_files: dict[str, int] = field(default_factory=dict)  # file -> far pixels

    def add(self, name: str, pixels: int, far: int) -> None:
        self.files += 1
        self.pixels += pixels
        if far:
            self.far_pixels += far
            self.far_files[name] = far

    def summary(self, tolerance: float) -> str | None:
        if not self.far_pixels:
            return None
        worst = sorted(self.far_files.items(), key=lambda kv: -kv[1])[:3]
        listed = ", ".join(f"{Path(f).name} ({n})" for f, n in worst)
        return (
            f"{self.far_pixels} mask pixels ({100 * self.far_pixels / max(1, self.pixels):.3f}%) in "
            f"{len(self.far_files)} of {self.files} masks differ by more "
            f"than {tolerance:g} in a channel from every class colour "
            f"and were mapped to the nearest one; most in {listed}. Check the class colours or data.mask_tolerance"
        )


def audit_masks(mask_files: list[Path], class_map: ClassMap, workers: int | None = None) -> MaskAudit:
    """Count mask pixels that are far from every class colour (streamed, nothing kept in RAM)."""

    def one(path: Path) -> tuple[str, int, int]:
        rgb = read_mask(path)
        return str(path), class_map.to_indices(rgb).far_pixels, rgb.shape[0] * rgb.shape[1]

    audit = MaskAudit()
    with ThreadPoolExecutor(workers or settings.workers()) as pool:
        for name, far, pixels in pool.map(one, mask_files):
            audit.add(name, pixels, far)
    return audit


def check_pairs(pairs: list[tuple[Path, Path]], class_map: ClassMap, workers: int | None = None) -> MaskAudit:
    """Read every image and mask once before training starts: each must decode, and a mask must
    have its image's size. A bad file stops the command here, named, before anything is written,
    instead of inside TensorFlow's input threads in the middle of an epoch. Returns the mask audit."""

    def one(pair: tuple[Path, Path]) -> tuple[str, int, int] | str:
        image_path, mask_path = pair
        try:
            image = read_image(image_path, channels=None)
            rgb = read_mask(mask_path)
        except DataError as e:
            return str(e)
        if image.shape[:2] != rgb.shape[:2]:
            return (
                f"{image_path} is {image.shape[1]}×{image.shape[0]} but its mask {mask_path.name} is "
                f"{rgb.shape[1]}×{rgb.shape[0]}: not a pair; fix or remove them"
            )
        return str(mask_path), rgb.shape[0] * rgb.shape[1], class_map.to_indices(rgb).far_pixels

    audit, problems = MaskAudit(), []
    with ThreadPoolExecutor(workers or settings.workers()) as pool:
        for result in pool.map(one, pairs):
            if isinstance(result, str):
                problems.append(result)
            else:
                audit.add(*result)
    if problems:
        more = (
            f" ({len(problems) - 1} more file(s) like it; all are checked before anything is written)"
            if len(problems) > 1
            else ""
        )
        raise DataError(problems[0] + more)
    return audit
