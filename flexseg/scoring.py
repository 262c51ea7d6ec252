"""Segmentation scores in NumPy: overlap (Dice, IoU, precision, recall) and HD95, per class.

Empty masks, the case that decides what a score means on medical data:

- truth and prediction both empty for a class: the ``both_empty`` rule decides. ``"nan"``
  (the default) gives NaN, left out of the mean over images and counted; ``"one"`` scores it
  as a perfect 1.0 (and an HD95 of 0).
- one side empty, the other not: the prediction is wrong, so every overlap score is 0 (for
  precision with nothing predicted and recall with nothing to find, too), and HD95 is
  undefined (NaN, counted apart).
"""

from __future__ import annotations

import numpy as np

OVERLAP_METRICS = ("dice", "iou", "precision", "recall")
BOTH_EMPTY_RULES = ("nan", "one")


def confusion_counts(truth: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes, 3) array of TP, FP, FN for class-index masks of equal shape."""
    k = num_classes
    matrix = np.bincount(truth.reshape(-1).astype(np.int64) * k + pred.reshape(-1), minlength=k * k).reshape(k, k)
    tp = np.diag(matrix)
    return np.stack([tp, matrix.sum(0) - tp, matrix.sum(1) - tp], axis=1)


def overlap_scores(counts: np.ndarray, both_empty: str = "nan") -> dict[str, np.ndarray]:
    """Dice, IoU, precision and recall for each row of (..., 3) TP/FP/FN counts."""
    tp, fp, fn = (counts[..., i].astype(np.float64) for i in range(3))
    empty = (tp + fp + fn) == 0
    fill = np.nan if both_empty == "nan" else 1.0

    def ratio(num: float, den: float):
        with np.errstate(invalid="ignore", divide="ignore"):
            value = np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)  # one side empty: 0
        return np.where(empty, fill, value)

    return {
        "dice": ratio(2 * tp, 2 * tp + fp + fn),
        "iou": ratio(tp, tp + fp + fn),
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
    }


def surface(mask: np.ndarray) -> np.ndarray:
    """The boundary pixels of a binary mask: set pixels with an unset 4-neighbour (or the image edge)."""
    padded = np.pad(mask, 1, constant_values=False)
    interior = padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~interior


def hd95(
    truth: np.ndarray, pred: np.ndarray, spacing: tuple[float, float] = (1.0, 1.0), both_empty: str = "nan"
) -> float:
    """95th-percentile Hausdorff distance between the boundaries of two binary masks.

    The larger of the two directed 95th percentiles (each boundary pixel's distance to the
    nearest boundary pixel of the other mask), as MONAI and the medical-segmentation
    decathlon compute it. ``spacing`` is (row, column) pixel size, e.g. mm from DICOM
    PixelSpacing; (1, 1) gives pixels. NaN when exactly one mask is empty.
    """
    from scipy.ndimage import distance_transform_edt

    truth, pred = truth.astype(bool), pred.astype(bool)
    if not truth.any() and not pred.any():
        return np.nan if both_empty == "nan" else 0.0
    if not truth.any() or not pred.any():
        return np.nan
    s_truth, s_pred = surface(truth), surface(pred)
    to_truth = distance_transform_edt(~s_truth, sampling=spacing)
    to_pred = distance_transform_edt(~s_pred, sampling=spacing)
    return float(max(np.percentile(to_pred[s_truth], 95), np.percentile(to_truth[s_pred], 95)))
