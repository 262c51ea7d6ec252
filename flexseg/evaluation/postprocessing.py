"""Post-processing chosen by evidence, as nnU-Net chooses it: after a cross-validation, keep only
the largest connected component (first of all foreground together, then of each class) only where
that raises the pooled out-of-fold Dice and lowers no class. A knee MRI slice holds several bones
of one class; keeping one component would delete the others, and this rule sees the Dice fall and
says no. The decision is written beside the ensemble (postprocessing.json) and applied by the
predictor in `infer` and `evaluate`."""

from __future__ import annotations

import numpy as np

from flexseg.inference.postprocess import POSTPROCESSING_FILE, keep_largest, read_decision  # noqa: F401 (the file)
from flexseg.scoring import confusion_counts

TOLERANCE = 1e-9  # a class "does not get worse" within rounding


def pooled_dice(truths: list[np.ndarray], preds: list[np.ndarray], num_classes: int) -> list[float | None]:
    """Dice of each foreground class over all images together (TP, FP, FN summed); None where a
    class is in neither truth nor prediction of any image."""
    total = np.zeros((num_classes, 3), np.int64)
    for truth, pred in zip(truths, preds):
        total += np.asarray(confusion_counts(truth, pred, num_classes))
    dice = []
    for tp, fp, fn in total[1:]:
        dice.append(None if tp + fp + fn == 0 else float(2 * tp / (2 * tp + fp + fn)))
    return dice


def _better(after: list, before: list, focus: list[int] | None = None) -> bool:
    """Whether ``after`` raises the Dice of the classes in ``focus`` (all foreground: their mean)
    and lowers none."""
    pairs = [(a or 0.0, b or 0.0) for a, b in zip(after, before)]
    if any(a < b - TOLERANCE for a, b in pairs):
        return False
    chosen = [pairs[i] for i in (focus if focus is not None else range(len(pairs)))]
    return sum(a for a, _ in chosen) > sum(b for _, b in chosen) + TOLERANCE


def decide(truths: list[np.ndarray], preds: list[np.ndarray], class_names: list[str]) -> dict:
    """The decision on out-of-fold ``preds`` against ``truths`` (class-index masks, 2D slices or
    3D volumes): what was tried, the pooled Dice before and after each step, and what is kept."""
    n = len(class_names)
    base = pooled_dice(truths, preds, n)
    tried = []
    candidate = [keep_largest(p, together=True) for p in preds]
    after = pooled_dice(truths, candidate, n)
    foreground = _better(after, base)
    tried.append(
        {"step": "largest component of all foreground", "dice_before": base, "dice_after": after, "kept": foreground}
    )
    current, current_dice = (candidate, after) if foreground else (preds, base)
    classes = []
    for c in range(1, n):
        candidate = [keep_largest(p, classes=(c,)) for p in current]
        after = pooled_dice(truths, candidate, n)
        kept = _better(after, current_dice, focus=[c - 1])
        tried.append(
            {
                "step": f"largest component of {class_names[c]}",
                "dice_before": current_dice,
                "dice_after": after,
                "kept": kept,
            }
        )
        if kept:
            current, current_dice = candidate, after
            classes.append(class_names[c])
    return {
        "rule": "kept where the pooled out-of-fold Dice rises and no class falls",
        "largest_component_of_foreground": foreground,
        "largest_component_of_classes": classes,
        "classes": class_names[1:],
        "out_of_fold_pooled_dice": {"before": base, "after": current_dice},
        "tried": tried,
    }
