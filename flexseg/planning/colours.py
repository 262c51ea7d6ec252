"""The few real class colours of a folder of masks, even when the masks were saved as JPEG.

A JPEG-damaged mask holds hundreds of colours for a few classes: each class colour is a sharp
peak (the inside of every region) and the damage is a thin spread between and around the peaks
(the edges). A colour is taken as a class when it is such a peak:

1. colours are visited from the densest down, where a colour's density is the number of pixels
   within ``PEAK_RADIUS`` of it (per channel), so a peak blurred over a few neighbouring values
   by JPEG still counts as one;
2. a colour closer than ``SEPARATION`` to a class already taken belongs to that class;
3. it must be a peak: no colour within ``SEPARATION`` is denser (JPEG's ramps between two
   classes fall away from both), it holds at least ``PEAK_SHARE`` of the pixels within
   ``SEPARATION`` of it that no class has taken, and at least ``MIN_SHARE`` of all pixels.

The class's colour is the most frequent exact colour of its peak. Pixels further than the
tolerance from every class colour are counted (they are what split reports as far pixels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PEAK_RADIUS = 12  # per channel: the blur JPEG puts on a flat region's colour
SEPARATION = 48  # per channel: closer colours are one class (the data.mask_tolerance default is 60)
MIN_SHARE = 1e-4  # of all pixels: smaller peaks are noise (one 512² mask in 10 000 pixels is 26 px)
PEAK_SHARE = 0.5  # of the pixels within SEPARATION: a peak, not a ramp
SNAP = 3  # a channel this close to 0 or 255 is taken as 0 or 255
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


def find_classes(colors: np.ndarray, counts: np.ndarray, tolerance: float = 60.0) -> FoundClasses:
    """The class colours among ``colors`` (N, 3) with pixel ``counts`` (N,), by the peak rule of this
    module; the background (black if it is a class, else the most frequent) comes first."""
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
        near = gap[i] <= SEPARATION
        if density[i] < density[near].max() or density[i] < PEAK_SHARE * counts[near & ~claimed].sum():
            continue
        peak = np.flatnonzero(gap[i] <= PEAK_RADIUS)
        taken.append((int(peak[np.argmax(counts[peak])]), int(density[i])))
        claimed |= gap[i] <= SEPARATION
    taken.sort(key=lambda t: (tuple(colors[t[0]]) != (0, 0, 0), -t[1]))
    found = [_snapped(colors[i]) for i, _ in taken]
    return _fit(found, colors, counts, total, distinct, tolerance)


def _snapped(color: np.ndarray) -> tuple[int, int, int]:
    """A JPEG-shifted pure colour back to its channel's end (254 → 255, 2 → 0)."""
    return tuple(0 if v <= SNAP else 255 if v >= 255 - SNAP else int(v) for v in color.tolist())


def _fit(found, colors, counts, total, distinct, tolerance) -> FoundClasses:
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
