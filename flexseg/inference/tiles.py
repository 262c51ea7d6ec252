"""Sliding windows: where they start and how overlapping windows are blended."""

from __future__ import annotations

import numpy as np


def gaussian_window(height: int, width: int, sigma_fraction: float = 0.125) -> np.ndarray:
    """Weights for blending overlapping windows: 1 at the centre, falling off towards the edges
    (sigma = 1/8 of the window, as nnU-Net), never 0, so every pixel has some weight."""
    ys = np.exp(-0.5 * ((np.arange(height) - (height - 1) / 2) / (sigma_fraction * height)) ** 2)
    xs = np.exp(-0.5 * ((np.arange(width) - (width - 1) / 2) / (sigma_fraction * width)) ** 2)
    window = np.outer(ys, xs)
    return np.maximum(window / window.max(), 1e-3).astype(np.float32)


def window_starts(length: int, window: int, overlap: float) -> list[int]:
    """Start offsets of windows covering ``length`` with at least ``overlap`` between neighbours;
    the last window ends at the edge."""
    if length <= window:
        return [0]
    stride = max(1, int(window * (1.0 - overlap)))
    starts = list(range(0, length - window, stride))
    return starts + [length - window]
