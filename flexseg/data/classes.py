"""Class map: class colours <-> class indices, nearest-colour mapping, palette."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from flexseg.config import MASK_TOLERANCE

if TYPE_CHECKING:
    from flexseg.config import Experiment


@dataclass
class MaskConversion:
    rgb: np.ndarray  # (H, W, 3) int32, the mask as read
    indices: np.ndarray  # (H, W) uint8 class indices
    colors: np.ndarray
    tolerance: float

    @cached_property
    def far_pixels(self) -> int:
        """Pixels with a channel more than the tolerance away from their nearest class colour.
        Computed on demand: the training pipeline needs only the indices."""
        deviation = np.abs(self.rgb - self.colors[self.indices]).max(axis=-1)
        return int((deviation > self.tolerance).sum())


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
        """Map every pixel of an RGB (H, W, 3) or grey (H, W) mask to its nearest class colour.

        Masks saved as JPEG carry noise around each colour, so exact matching would fail;
        pixels with a channel more than ``tolerance`` away from their nearest colour are
        counted, not hidden.
        """
        if mask.ndim == 2:
            mask = np.repeat(mask[..., None], 3, axis=-1)
        rgb = mask[..., :3].astype(np.int32)
        # squared distances to each class colour, (H, W, C); small C keeps this cheap
        d2 = ((rgb[..., None, :] - self.colors[None, None]) ** 2).sum(axis=-1)
        return MaskConversion(rgb, d2.argmin(axis=-1).astype(np.uint8), self.colors, self.tolerance)

    def to_rgb(self, indices: np.ndarray) -> np.ndarray:
        return self.colors.astype(np.uint8)[indices]

    def palette(self) -> list[int]:
        """A 256-entry flat RGB palette for PIL 'P' images; unused entries are black."""
        flat = self.colors.astype(np.uint8).reshape(-1).tolist()
        return flat + [0] * (768 - len(flat))
