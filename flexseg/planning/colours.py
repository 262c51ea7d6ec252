"""The few real class colours of a folder of masks, even when the masks were saved as JPEG.

A JPEG-damaged mask holds hundreds of colours for a few classes: each class colour is a sharp
peak (the inside of every region) and the damage is a thin spread between and around the peaks
(the edges). A colour is taken as a class when it is such a peak:

1. colours are visited from the densest down, where a colour's density is the number of pixels
   within ``PEAK_RADIUS`` of it (per channel), so a peak blurred over a few neighbouring values
   by JPEG still counts as one;
2. a colour closer than ``SEPARATION`` to a class already taken belongs to that class;
3. it must be a peak: no colour within ``SEPARATION`` is denser (JPEG's ramps between two
   classes fall away from both), at least ``PEAK_SHARE`` of the pixels within ``SEPARATION`` of
   it that no class has taken lie within ``PEAK_RADIUS`` of it (a flat ramp spreads them evenly),
   and it holds at least ``MIN_SHARE`` of all pixels;
4. its pixels form regions: at least ``MIN_INTERIOR`` of them lie inside one (JPEG mixes two
   colours along their shared edge into a line one or two pixels wide, which has no inside).

The class's colour is the most frequent exact colour of its peak. Pixels further than the
tolerance from every class colour are counted (they are what split reports as far pixels).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from flexseg.config import MASK_TOLERANCE

if TYPE_CHECKING:
    from collections.abc import Callable

PEAK_RADIUS = 12  # per channel: the blur JPEG puts on a flat region's colour
SEPARATION = 48  # per channel: closer colours are one class (the data.mask_tolerance default is 60)
MIN_SHARE = 1e-4  # of all pixels: smaller peaks are noise (one 512² mask in 10 000 pixels is 26 px)
PEAK_SHARE = 0.5  # of the pixels within SEPARATION: a peak, not a ramp
MIN_INTERIOR = 0.1  # of a colour's pixels inside a region (a 4×4 square: 4 of 16); edge colours: ~0
SNAP = 8  # a channel this close to 0 or 255 is taken as 0 or 255
MAX_DISTINCT = 4096  # distinct colours compared pairwise (the most frequent); the rest are noise


@dataclass
class FoundClasses:
    """The class colours found (the background first) and how well the masks fit them."""

    colors: list[tuple[int, int, int]]
    pixels: list[int]  # per class: pixels nearest to its colour
    distinct_colors: int  # exact colours in the masks
    far_pixels: int  # pixels further than the tolerance from every class colour
    inexact_pixels: int  # pixels not exactly their class's colour (JPEG damage within the tolerance too)
    total_pixels: int
    tolerance: float

    @property
    def shares(self) -> list[float]:
        return [p / max(1, self.total_pixels) for p in self.pixels]


def count_colors(masks: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Distinct RGB colours of (H, W, 3) uint8 masks and how many pixels hold each."""
    counts: dict[int, int] = {}
    for mask in masks:
        packed = (mask[..., 0].astype(np.uint32) << 16) | (mask[..., 1].astype(np.uint32) << 8) | mask[..., 2]
        values, n = np.unique(packed, return_counts=True)
        for v, c in zip(values.tolist(), n.tolist()):
            counts[v] = counts.get(v, 0) + c
    packed = np.array(sorted(counts), np.uint32)
    colors = np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=1).astype(np.int32)
    return colors.reshape(-1, 3), np.array([counts[v] for v in packed.tolist()], np.int64)


def interior_share(masks: list[np.ndarray]) -> Callable[[np.ndarray], float]:
    """For a colour: the share of the pixels within PEAK_RADIUS of it whose 3×3 neighbourhood is
    too: regions have an inside, the colours JPEG mixes along an edge lie on lines one or two
    pixels wide."""
    import cv2

    def share(color: np.ndarray) -> float:
        near = inside = 0
        for mask in masks:
            hit = (np.abs(mask.astype(np.int16) - color.astype(np.int16)).max(axis=-1) <= PEAK_RADIUS).astype(np.uint8)
            near += int(hit.sum())
            inside += int(cv2.erode(hit, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE).sum())
        return inside / max(1, near)

    return share


def find_classes_in(masks: list[np.ndarray], tolerance: float = MASK_TOLERANCE) -> FoundClasses:
    """The class colours of (H, W, 3) uint8 ``masks``: ``find_classes`` with the interior test."""
    colors, counts = count_colors(masks)
    return find_classes(colors, counts, tolerance, interior_share(masks))


def find_classes(
    colors: np.ndarray,
    counts: np.ndarray,
    tolerance: float = MASK_TOLERANCE,
    interior: Callable[[np.ndarray], float] | None = None,
) -> FoundClasses:
    """The class colours among ``colors`` (N, 3) with pixel ``counts`` (N,), by the peak rule of this
    module (and, given ``interior``, the share of a colour's pixels inside a region, at least
    MIN_INTERIOR); the background (black if it is a class, else the most frequent) comes first."""
    total = int(counts.sum())
    distinct = len(colors)
    top = np.argsort(-counts, kind="stable")[:MAX_DISTINCT]
    colors, counts = colors[top], counts[top]
    gap = np.abs(colors[:, None, :] - colors[None, :, :]).max(axis=-1)  # (N, N) per-channel distance
    density = (counts[None, :] * (gap <= PEAK_RADIUS)).sum(axis=1)
    taken: list[tuple[int, int]] = []  # (index of the class colour, its peak's density)
    claimed = np.zeros(len(colors), bool)  # within SEPARATION of a class taken
    for i in np.argsort(-density, kind="stable"):
        if claimed[i] or density[i] < MIN_SHARE * total:
            continue
        near, peak = gap[i] <= SEPARATION, gap[i] <= PEAK_RADIUS
        if (
            density[i] < density[near].max()
            or counts[peak & ~claimed].sum() < PEAK_SHARE * counts[near & ~claimed].sum()
            or (interior is not None and interior(colors[i]) < MIN_INTERIOR)
        ):
            continue
        members = np.flatnonzero(peak)
        taken.append((int(members[np.argmax(counts[members])]), int(density[i])))
        claimed |= gap[i] <= SEPARATION
    taken.sort(key=lambda t: (tuple(colors[t[0]]) != (0, 0, 0), -t[1]))
    found = [_snapped(colors[i]) for i, _ in taken]
    return _fit(found, colors, counts, total, distinct, tolerance)


def _snapped(color: np.ndarray) -> tuple[int, int, int]:
    """A JPEG-shifted pure colour back to its channel's end (251 → 255, 5 → 0)."""
    return tuple(0 if v <= SNAP else 255 if v >= 255 - SNAP else int(v) for v in color.tolist())


def _fit(
    found: list[tuple[int, int, int]],
    colors: np.ndarray,
    counts: np.ndarray,
    total: int,
    distinct: int,
    tolerance: float,
) -> FoundClasses:
    if not found:
        return FoundClasses([], [], distinct, total, total, total, tolerance)
    palette = np.array(found, np.int32)
    d2 = ((colors[:, None, :] - palette[None]) ** 2).sum(axis=-1)
    nearest = d2.argmin(axis=1)
    deviation = np.abs(colors - palette[nearest]).max(axis=1)
    pixels = [int(counts[nearest == k].sum()) for k in range(len(found))]
    # colours beyond MAX_DISTINCT were not compared: each is rare; count them as far
    far = int(counts[deviation > tolerance].sum()) + (total - int(counts.sum()))
    inexact = int(counts[deviation > 0].sum()) + (total - int(counts.sum()))
    return FoundClasses(found, pixels, distinct, far, inexact, total, tolerance)
