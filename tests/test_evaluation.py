import math

import numpy as np

from flexseg.data.classes import ClassMap
from flexseg.evaluation import (
    EvaluationAccumulator,
    confusion_counts,
    cross_entropy,
    dice_iou,
    seed_dice_coef_multiclass,
)


def test_confusion_counts_by_hand():
    truth = np.array([[0, 1, 1], [2, 2, 0]])
    pred = np.array([[0, 1, 0], [2, 1, 1]])
    counts = confusion_counts(truth, pred, 3)
    # class 1: TP 1 (0,1); FP 2 ((1,1),(1,2)); FN 1 (0,2)
    assert counts[1].tolist() == [1, 2, 1]
    assert counts[2].tolist() == [1, 0, 1]
    dice, iou = dice_iou(counts)
    assert math.isclose(dice[1], 2 / 5) and math.isclose(iou[1], 1 / 4)
    assert math.isclose(dice[2], 2 / 3) and math.isclose(iou[2], 1 / 2)


def test_both_empty_is_nan_and_left_out_of_the_mean():
    cm = ClassMap(["bg", "a"], [(0, 0, 0), (255, 255, 255)])
    acc = EvaluationAccumulator(cm)
    empty = np.zeros((4, 4), np.uint8)
    probs_bg = np.zeros((4, 4, 2), np.float32)
    probs_bg[..., 0] = 1
    acc.add("empty.png", empty, probs_bg)  # nothing to find, nothing found: NaN
    half = empty.copy()
    half[:2] = 1
    probs = probs_bg.copy()
    probs[:2, :2] = [0, 1]  # finds half of it
    acc.add("half.png", half, probs)
    report = acc.report()
    assert report.images[0]["dice_a"] is None
    assert math.isclose(report.per_class["a"]["dice"], 2 * 4 / (2 * 4 + 4))
    assert report.empty_cases == {"a": 1}
    assert math.isclose(report.foreground_dice, 2 / 3)


def test_seed_metric_counts_background_so_an_empty_prediction_scores_high():
    truth = np.zeros((100, 100), np.uint8)
    truth[:14, :10] = 1  # 1.4% foreground, as NBM
    empty = np.eye(2, dtype=np.float32)[np.zeros_like(truth)]
    assert 0.98 < seed_dice_coef_multiclass(truth, empty) < 0.99
    fg_dice, _ = dice_iou(confusion_counts(truth, np.zeros_like(truth), 2))
    assert fg_dice[1] == 0.0


def test_cross_entropy_matches_keras_clip():
    idx = np.array([[0, 1]])
    probs = np.array([[[1.0, 0.0], [1.0, 0.0]]])
    assert math.isclose(cross_entropy(idx, probs), -np.log(1e-7) / 2, rel_tol=1e-6)
