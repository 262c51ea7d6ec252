"""Pairing image files with mask files."""

from __future__ import annotations

from pathlib import Path

from flexseg.data.io import list_images
from flexseg.errors import DataError


def pair_by_stem(images_dir: Path, masks_dir: Path) -> list[tuple[Path, Path]]:
    """Pairs (image, mask) whose file names share a stem, sorted by stem.

    Every image must have a mask and the reverse; the error lists the strays.
    """
    images = {p.stem: p for p in list_images(images_dir)}
    masks = {p.stem: p for p in list_images(masks_dir)}
    if not images:
        raise DataError(f"{images_dir}: no images (png, jpg, tif, bmp) in this folder")
    lonely_images = sorted(images.keys() - masks.keys())
    lonely_masks = sorted(masks.keys() - images.keys())
    if lonely_images or lonely_masks:
        parts = []
        if lonely_images:
            parts.append(f"{len(lonely_images)} image(s) without a mask in {masks_dir} (e.g. {_some(lonely_images)})")
        if lonely_masks:
            parts.append(f"{len(lonely_masks)} mask(s) without an image in {images_dir} (e.g. {_some(lonely_masks)})")
        raise DataError("unpaired files: " + "; ".join(parts) + ". Images and masks are paired by file name stem")
    return [(images[s], masks[s]) for s in sorted(images)]


def split_pairs(exp, split: str) -> list[tuple[Path, Path]]:
    """The (image, mask) pairs of one split (train, valid or test) of an experiment."""
    folder = exp.data.split_dir(split)
    return pair_by_stem(folder / "images", folder / "masks")


def _some(names: list[str], n: int = 3) -> str:
    return ", ".join(repr(x) for x in names[:n]) + (" …" if len(names) > n else "")
