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
    """The boundary elements of a binary mask of any dimension: set pixels (voxels) with an unset
    face neighbour (4-neighbour in 2D, 6-neighbour in 3D) or on the array's edge."""
    from scipy import ndimage

    mask = mask.astype(bool)
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure=structure, border_value=0)


def hd95(
    truth: np.ndarray, pred: np.ndarray, spacing: tuple[float, ...] | None = None, both_empty: str = "nan"
) -> float:
    """95th-percentile Hausdorff distance between the boundaries of two binary masks.

    The larger of the two directed 95th percentiles (each boundary pixel's distance to the
    nearest boundary pixel of the other mask), as MONAI and the medical-segmentation
    decathlon compute it. ``spacing`` is the element size along each axis, e.g. (row, column)
    mm from DICOM PixelSpacing or (slice, row, column) mm of a volume; 1s give pixels. NaN when
    exactly one mask is empty. Works in 2D and 3D.
    """
    from scipy.ndimage import distance_transform_edt

    truth, pred = truth.astype(bool), pred.astype(bool)
    if not truth.any() and not pred.any():
        return np.nan if both_empty == "nan" else 0.0
    if not truth.any() or not pred.any():
        return np.nan
    s_truth, s_pred = surface(truth), surface(pred)
    spacing = spacing or (1.0,) * truth.ndim
    to_truth = distance_transform_edt(~s_truth, sampling=spacing)
    to_pred = distance_transform_edt(~s_pred, sampling=spacing)
    return float(max(np.percentile(to_pred[s_truth], 95), np.percentile(to_truth[s_pred], 95)))


def face_areas(mask: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """Per element of a binary mask, the area of its faces that border an unset neighbour or the
    array's edge (in 2D: edge lengths): the boundary of the mask as a surface, element by element."""
    mask = mask.astype(bool)
    areas = np.zeros(mask.shape, np.float64)
    for axis in range(mask.ndim):
        face = float(np.prod([s for a, s in enumerate(spacing) if a != axis]))
        padded = np.pad(mask, [(1, 1) if a == axis else (0, 0) for a in range(mask.ndim)])
        for shift in (0, 2):
            neighbour = np.take(padded, np.arange(shift, shift + mask.shape[axis]), axis=axis)
            areas += (mask & ~neighbour) * face
    return areas


def surface_dice(
    truth: np.ndarray, pred: np.ndarray, spacing: tuple[float, ...], tolerance: float, both_empty: str = "nan"
) -> float:
    """Normalised surface Dice (NSD) at ``tolerance`` (in the unit of ``spacing``, e.g. mm): the
    share of the area of both boundaries that lies within the tolerance of the other boundary.
    Each boundary element counts with the area of its exposed faces, so anisotropic voxels do
    not bias it (counting boundary voxels, as MONAI does, weighs surfaces facing the coarse
    axis more: 0.40 instead of 0.49 for a sphere shifted along a 2-mm axis, tests/test_volumes.py).
    Both empty: the ``both_empty`` rule; one empty: 0."""
    from scipy.ndimage import distance_transform_edt

    truth, pred = truth.astype(bool), pred.astype(bool)
    if not truth.any() and not pred.any():
        return np.nan if both_empty == "nan" else 1.0
    if not truth.any() or not pred.any():
        return 0.0
    w_truth, w_pred = face_areas(truth, spacing), face_areas(pred, spacing)
    s_truth, s_pred = w_truth > 0, w_pred > 0
    to_truth = distance_transform_edt(~s_truth, sampling=spacing)
    to_pred = distance_transform_edt(~s_pred, sampling=spacing)
    close = w_truth[s_truth & (to_pred <= tolerance)].sum() + w_pred[s_pred & (to_truth <= tolerance)].sum()
    return float(close / (w_truth.sum() + w_pred.sum()))
