"""Every matplotlib figure flexseg writes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from matplotlib.figure import (
    Figure,  # no pyplot: nothing global (backend, open figures) is touched
)

from flexseg.fsutil import atomic_path  # noqa: E402

if TYPE_CHECKING:
    import numpy as np


def plot_history(rows: list[dict], keys: list[str], title: str, path: Path) -> None:
    """Line plot of per-epoch values, as the legacy scripts' train_metrics.png / train_losses.png."""
    fig = Figure(figsize=(7, 4.5), dpi=100)
    ax = fig.subplots()
    epochs = [r["epoch"] for r in rows]
    for key in keys:
        values = [r.get(key) for r in rows]
        if any(v is not None for v in values):
            ax.plot(epochs, values, marker="o", markersize=3, label=key)
    ax.set_xlabel("epoch")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[1]:
        ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)


def plot_split_counts(counts: dict[str, tuple[int, int]], title: str, path: Path) -> None:
    """Bar chart of pairs per split (originals, with augmented copies stacked on top)."""
    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.subplots()
    names = list(counts)
    originals = [counts[n][0] for n in names]
    augmented = [counts[n][1] for n in names]
    bars = ax.bar(names, originals, color="#4c72b0", label="original")
    if any(augmented):
        ax.bar(names, augmented, bottom=originals, color="#9ecae1", label="augmented")
        ax.legend()
    for bar, o, a in zip(bars, originals, augmented):
        ax.annotate(f"{o + a}", (bar.get_x() + bar.get_width() / 2, o + a), ha="center", va="bottom")
    ax.set_ylabel("image/mask pairs")
    ax.set_title(title)
    ax.margins(y=0.12)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)


def plot_montage(images: list, titles: list[str], title: str, path: Path, columns: int = 4) -> None:
    """A grid of RGB uint8 images with their file names."""
    rows = max(1, -(-len(images) // columns))
    fig = Figure(figsize=(3 * columns, 3.2 * rows), dpi=80)
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, name in zip(axes.ravel(), images, titles):
        ax.imshow(image, interpolation="nearest")
        ax.set_title(name if len(name) <= 28 else "…" + name[-27:], fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)


def epoch_montage(
    images: list, truths: list, predictions: list, names: list[str], colors: np.ndarray, title: str
) -> np.ndarray:
    """One RGB uint8 picture: a row per image with input | truth | prediction, under a title.

    ``images`` are (H, W, C) uint8, ``truths`` class indices or None when the image has no
    mask, ``predictions`` class indices; ``colors`` maps a class index to RGB. Drawn with
    OpenCV (no figure), so writing one per epoch costs milliseconds.
    """
    import cv2
    import numpy as np

    lut = np.asarray(colors, np.uint8)
    header = 22
    width = images[0].shape[1] if images else 1
    scale = min(max(1.0, 160 / width), 256 / width)  # panels 160..256 pixels wide, whatever the model size

    def panel(array: np.ndarray, label: str, nearest: bool = True):
        rgb = np.repeat(array, 3, axis=-1) if array.shape[-1] == 1 else array
        if scale != 1.0:
            size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)
        framed = np.full((rgb.shape[0] + header, rgb.shape[1], 3), 255, np.uint8)
        framed[header:] = rgb
        room = rgb.shape[1] // 8
        label = label if len(label) <= room else ".." + label[-(room - 2) :]  # names differ at the end
        cv2.putText(framed, label, (3, header - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        return framed

    rows = []
    for image, truth, pred, name in zip(images, truths, predictions, names):
        blank = np.full(image.shape[:2] + (3,), 128, np.uint8)
        rows.append(
            np.hstack(
                [
                    panel(image, name, nearest=False),
                    panel(lut[truth] if truth is not None else blank, "truth" if truth is not None else "no mask"),
                    panel(lut[pred], "prediction"),
                ]
            )
        )
    body = np.vstack(rows)
    top = np.full((header + 4, body.shape[1], 3), 255, np.uint8)
    cv2.putText(top, title, (3, header - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([top, body])
