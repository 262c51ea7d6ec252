"""Synthetic CT-like slices: the demo's dataset, and the tests' and benchmarks' tiny ones."""

from __future__ import annotations

import cv2
import numpy as np


def synthetic_slice(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """One CT-like slice: a body ellipse, bright bones, darker lytic lesions inside bones, noise.

    Returns an RGB uint8 image and class indices (0 background, 1 bone, 2 lesion).
    """
    s = min(height, width)
    image = np.full((height, width), 12.0, np.float32)
    labels = np.zeros((height, width), np.uint8)
    cy, cx = height / 2 + rng.uniform(-0.05, 0.05) * s, width / 2 + rng.uniform(-0.05, 0.05) * s
    body = (int(cx), int(cy)), (int(rng.uniform(0.36, 0.46) * width), int(rng.uniform(0.30, 0.40) * height))
    cv2.ellipse(image, body[0], body[1], rng.uniform(-10, 10), 0, 360, float(rng.uniform(80, 105)), -1)

    bones = np.zeros((height, width), np.uint8)
    # a vertebra below the centre and one or two bones at the sides, as in an abdominal slice
    centres = [(cx + rng.uniform(-0.03, 0.03) * s, cy + rng.uniform(0.12, 0.2) * s)]
    for side in rng.choice([-1, 1], size=rng.integers(1, 3), replace=False):
        centres.append((cx + side * rng.uniform(0.22, 0.3) * s, cy + rng.uniform(-0.05, 0.1) * s))
    for bx, by in centres:
        axes = (int(rng.uniform(0.06, 0.1) * s), int(rng.uniform(0.05, 0.09) * s))
        cv2.ellipse(bones, (int(bx), int(by)), axes, rng.uniform(0, 180), 0, 360, 1, -1)
    image[bones == 1] = rng.uniform(200, 235)
    labels[bones == 1] = 1

    ys, xs = np.nonzero(bones)
    for _ in range(rng.integers(0, 3)):
        k = rng.integers(len(ys))
        radius = int(rng.uniform(0.04, 0.06) * s)
        lesion = np.zeros_like(bones)
        cv2.circle(lesion, (int(xs[k]), int(ys[k])), radius, 1, -1)
        lesion &= bones
        image[lesion == 1] = rng.uniform(125, 150)
        labels[lesion == 1] = 2

    image = cv2.GaussianBlur(image, (3, 3), 0) + rng.normal(0, 10, image.shape).astype(np.float32)
    grey = np.clip(image, 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1), labels
