"""Pairing image files with mask files.

Four rules, chosen by ``split.pairing``:

- ``stem``: same file name stem (``a.png`` ↔ ``a.png``, ``a.dcm`` ↔ ``a.png``);
- ``natural``: both folders sorted by the numbers in their names, then paired in order
  (``_0, _12, _24`` ↔ ``Mask_001, Mask_013, Mask_025``); the counts must match;
- ``instance_number``: a DICOM image's InstanceNumber ↔ the last number in the mask name;
- ``regex``: the first group of a regex in each name (numbers compared as numbers).

Plain string sorting is never used to pair: ``_108`` sorts before ``_12``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from flexseg.data.io import (
    IMAGE_SUFFIXES,
    RAW_IMAGE_SUFFIXES,
    dicom_instance_number,
    list_images,
)
from flexseg.errors import ConfigError, DataError

if TYPE_CHECKING:
    from collections.abc import Callable

    from flexseg.config import Experiment

_NUMBER = re.compile(r"\d+")


@dataclass
class Pairing:
    pairs: list[tuple[Path, Path]]
    lonely_images: list[Path] = field(default_factory=list)
    lonely_masks: list[Path] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.lonely_images and not self.lonely_masks

    def describe_unpaired(self) -> str:
        parts = []
        if self.lonely_images:
            parts.append(f"{len(self.lonely_images)} image(s) without a mask: {_some(self.lonely_images)}")
        if self.lonely_masks:
            parts.append(f"{len(self.lonely_masks)} mask(s) without an image: {_some(self.lonely_masks)}")
        return "; ".join(parts)


def natural_key(name: str) -> tuple:
    """Sort key that orders the numbers in a name by value: ``x_2`` before ``x_12``."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name))


def last_number(name: str) -> int | None:
    numbers = _NUMBER.findall(name)
    return int(numbers[-1]) if numbers else None


def pair_files(
    images: list[Path],
    masks: list[Path],
    rule: str = "stem",
    image_pattern: str | None = None,
    mask_pattern: str | None = None,
) -> Pairing:
    """Pair image files with mask files by ``rule``; files left without a partner are listed."""
    if rule == "natural":
        images = sorted(images, key=lambda p: natural_key(p.stem))
        masks = sorted(masks, key=lambda p: natural_key(p.stem))
        if len(images) != len(masks):
            n = min(len(images), len(masks))
            return Pairing(list(zip(images[:n], masks[:n])), images[n:], masks[n:])
        return Pairing(list(zip(images, masks)))
    if rule == "stem":
        image_key, mask_key = (lambda p: p.stem), (lambda p: p.stem)
    elif rule == "instance_number":
        image_key, mask_key = _instance_number, (lambda p: last_number(p.stem))
    elif rule == "regex":
        image_key, mask_key = _regex_key(image_pattern), _regex_key(mask_pattern or image_pattern)
    else:
        raise ConfigError(f"split.pairing: unknown rule {rule!r}; use stem, natural, instance_number or regex")
    by_image = _keyed(images, image_key, "image")
    by_mask = _keyed(masks, mask_key, "mask")
    common = sorted(by_image.keys() & by_mask.keys(), key=lambda k: natural_key(str(k)))
    return Pairing(
        [(by_image[k], by_mask[k]) for k in common],
        sorted(by_image[k] for k in by_image.keys() - by_mask.keys()),
        sorted(by_mask[k] for k in by_mask.keys() - by_image.keys()),
    )


def pair_folders(
    images_dir: Path,
    masks_dir: Path,
    rule: str = "stem",
    image_pattern: str | None = None,
    mask_pattern: str | None = None,
    image_suffixes: tuple[str, ...] = RAW_IMAGE_SUFFIXES,
) -> Pairing:
    images = list_images(images_dir, image_suffixes)
    if not images:
        raise DataError(f"{images_dir}: no images ({', '.join(s.lstrip('.') for s in image_suffixes)}) in this folder")
    return pair_files(images, list_images(masks_dir), rule, image_pattern, mask_pattern)


def pair_by_stem(images_dir: Path, masks_dir: Path) -> list[tuple[Path, Path]]:
    """Pairs (image, mask) whose file names share a stem, sorted by stem; every file must have
    its partner (the error lists the strays). This is the layout of a split dataset."""
    pairing = pair_folders(images_dir, masks_dir, "stem", image_suffixes=IMAGE_SUFFIXES)
    if not pairing.complete:
        raise DataError(
            f"unpaired files in {images_dir.parent}: {pairing.describe_unpaired()}. "
            "Images and masks are paired by file name stem"
        )
    return sorted(pairing.pairs, key=lambda pair: pair[0].stem)


def split_pairs(exp: Experiment, split: str) -> list[tuple[Path, Path]]:
    """The (image, mask) pairs of one split (train, valid or test) of an experiment."""
    folder = exp.data.split_dir(split)
    from flexseg.runs import COMPLETE_MARK, STAGING_DIR

    if (folder / STAGING_DIR / COMPLETE_MARK).exists():
        raise DataError(
            f"{folder}: an interrupted flexseg augment was putting its copies in place; run "
            "`flexseg augment EXPERIMENT` to finish it before using the split"
        )
    if not folder.is_dir() and exp.data.root is not None and (exp.data.root / "fold_0").is_dir():
        raise DataError(
            f"{exp.data.root} holds cross-validation folds (fold_0 …), not one {split} split: train with --folds "
            f"(or --fold N), or point data.root at one fold, e.g. --set data.root={exp.data.root / 'fold_0'}"
        )
    return pair_by_stem(folder / "images", folder / "masks")


def _instance_number(path: Path) -> int:
    if path.suffix.lower() != ".dcm":
        raise DataError(f"{path}: split.pairing: instance_number needs DICOM images (.dcm); use natural or regex")
    return dicom_instance_number(path)


def _regex_key(pattern: str):
    rx = re.compile(pattern)

    def key(path: Path):
        m = rx.search(path.name)
        if m is None:
            return None
        value = m.group("key") if "key" in rx.groupindex else m.group(1)
        return int(value) if value is not None and value.isdigit() else value

    return key


def _keyed(files: list[Path], key: Callable[[Path], str], kind: str) -> dict:
    out: dict = {}
    for path in files:
        k = key(path)
        if k is None:
            raise DataError(
                f"{path}: no pairing key in this {kind} name (split.pairing); "
                "fix the pattern or move the file out of the folder"
            )
        if k in out:
            raise DataError(
                f"{out[k].name} and {path.name} have the same pairing key {k!r}; each image needs exactly one mask"
            )
        out[k] = path
    return out


def _some(paths: list, n: int = 3) -> str:
    names = [p.name if isinstance(p, Path) else str(p) for p in paths]
    return ", ".join(repr(x) for x in names[:n]) + (" …" if len(names) > n else "")


def pair_volume_folders(images_dir: Path, masks_dir: Path) -> Pairing:
    """Image volumes with label volumes of the same name; nnU-Net's channel suffix is allowed on
    the image (``case_001_0000.nii.gz`` ↔ ``case_001.nii.gz``)."""
    from flexseg.data.volumes import is_volume, volume_stem

    def volumes(folder: Path) -> list[Path]:
        return sorted(p for p in folder.iterdir() if is_volume(p) and p.is_file() and not p.name.startswith("."))

    labels = {volume_stem(p): p for p in volumes(masks_dir)}
    pairs, lonely = [], []
    used: set[str] = set()
    for image in volumes(images_dir):
        stem = volume_stem(image)
        key = stem if stem in labels else re.sub(r"_\d{4}$", "", stem)
        if key in labels and key not in used:
            pairs.append((image, labels[key]))
            used.add(key)
        else:
            lonely.append(image)
    return Pairing(pairs, lonely, [p for k, p in labels.items() if k not in used])
