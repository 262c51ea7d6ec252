"""Class map: class colours <-> class indices, nearest-colour mapping, palette."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Callable

import numpy as np

from flexseg.config import MASK_TOLERANCE

if TYPE_CHECKING:
    from flexseg.config import Experiment


@dataclass
class MaskConversion:
    indices: np.ndarray  # (H, W) uint8 class indices
    count_far: Callable[[], int]  # see far_pixels

    @cached_property
    def far_pixels(self) -> int:
        """Pixels with a channel more than the tolerance away from their nearest class colour.
        Computed on demand: the training pipeline needs only the indices."""
        return int(self.count_far())


class ClassMap:
    """Ordered classes with their RGB colours; index 0 is the background."""

    def __init__(self, names: list[str], colors: list[tuple[int, int, int]], tolerance: float = MASK_TOLERANCE) -> None:
        if len(names) != len(colors):
            raise ValueError("one colour per class")
        self.names = list(names)
        self.colors = np.asarray(colors, dtype=np.int32).reshape(-1, 3)
        self.tolerance = float(tolerance)

    @classmethod
    def from_experiment(cls, exp: Experiment) -> "ClassMap":
        return cls([c.name for c in exp.classes], [tuple(c.color) for c in exp.classes], exp.data.mask_tolerance)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def foreground(self) -> list[int]:
        return list(range(1, len(self.names)))

    def to_indices(self, mask: np.ndarray) -> MaskConversion:
        """Map every pixel of an RGB (H, W, 3) or grey (H, W) mask to its nearest class colour
        (least squared distance; the first class on a tie).

        Masks saved as JPEG carry noise around each colour, so exact matching would fail;
        pixels with a channel more than ``tolerance`` away from their nearest colour are
        counted, not hidden. A grey mask (or an RGB one with equal channels, as most are) is
        mapped through a table of its grey values, any other through per-channel tables of
        squared distances: the same rule, without a distance per pixel and class colour.
        """
        rgb = mask[..., :3] if mask.ndim == 3 else mask
        grey = rgb.ndim == 2 or (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]))
        if not grey:
            return self._colour_indices(rgb)
        values = rgb if rgb.ndim == 2 else rgb[..., 0]
        table_size = 256 if values.dtype == np.uint8 else int(values.max()) + 1
        colours = np.repeat(np.arange(table_size, dtype=np.int64)[:, None], 3, axis=1)  # every grey value
        d2 = ((colours[:, None, :] - self.colors[None]) ** 2).sum(axis=-1)  # (grey values, classes)
        nearest = d2.argmin(axis=-1).astype(np.uint8)
        far = np.abs(colours - self.colors[nearest]).max(axis=-1) > self.tolerance
        return MaskConversion(nearest[values], lambda: far[values].sum() if far.any() else 0)

    def _colour_indices(self, rgb: np.ndarray) -> MaskConversion:
        """Colour masks: each channel's squared distances to the class colours from a table of its
        values, summed per pixel."""
        colors = self.colors.astype(np.int64)
        top = max(int(rgb.max()) + 1, 256)
        tables = [((np.arange(top)[:, None] - colors[None, :, c]) ** 2) for c in range(3)]  # (values, classes)
        d2 = tables[0][rgb[..., 0]] + tables[1][rgb[..., 1]] + tables[2][rgb[..., 2]]
        indices = d2.argmin(axis=-1).astype(np.uint8)

        def count_far() -> int:
            return int((np.abs(rgb.astype(np.int64) - colors[indices]).max(axis=-1) > self.tolerance).sum())

        return MaskConversion(indices, count_far)

    def to_rgb(self, indices: np.ndarray) -> np.ndarray:
        return self.colors.astype(np.uint8)[indices]

    def palette(self) -> list[int]:
        """A 256-entry flat RGB palette for PIL 'P' images; unused entries are black."""
        flat = self.colors.astype(np.uint8).reshape(-1).tolist()
        return flat + [0] * (768 - len(flat))
