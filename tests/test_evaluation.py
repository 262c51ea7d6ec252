import math

import numpy as np
import pytest

from flexseg.data.classes import ClassMap
from flexseg.errors import ConfigError
from flexseg.evaluation.slices import (
    EvaluationAccumulator,
    cross_entropy,
    failed_gates,
    legacy_dice_coef_multiclass,
)
from flexseg.scoring import confusion_counts, hd95, overlap_scores, surface

TWO = ClassMap(["bg", "a"], [(0, 0, 0), (255, 255, 255)])


def test_confusion_counts_and_overlap_by_hand():
    truth = np.array([[0, 1, 1], [2, 2, 0]])
    pred = np.array([[0, 1, 0], [2, 1, 1]])
    counts = confusion_counts(truth, pred, 3)
    # class 1: TP 1 (0,1); FP 2 ((1,1),(1,2)); FN 1 (0,2)
    assert counts[1].tolist() == [1, 2, 1]
    assert counts[2].tolist() == [1, 0, 1]
    s = overlap_scores(counts)
    assert math.isclose(s["dice"][1], 2 / 5) and math.isclose(s["iou"][1], 1 / 4)
    assert math.isclose(s["precision"][1], 1 / 3) and math.isclose(s["recall"][1], 1 / 2)
    assert (
        math.isclose(s["dice"][2], 2 / 3) and math.isclose(s["precision"][2], 1.0) and math.isclose(s["recall"][2], 0.5)
    )


def test_empty_cases_follow_the_rule():
    nothing = np.array([[0, 0, 0]])  # TP, FP, FN
    missed = np.array([[0, 0, 5]])  # truth present, nothing predicted
    invented = np.array([[0, 3, 0]])  # nothing to find, something predicted
    for metric in ("dice", "iou", "precision", "recall"):
        assert math.isnan(overlap_scores(nothing)[metric][0])
        assert overlap_scores(nothing, both_empty="one")[metric][0] == 1.0
        assert overlap_scores(missed)[metric][0] == 0.0
        assert overlap_scores(invented)[metric][0] == 0.0


def test_hd95_on_simple_shapes():
    a = np.zeros((40, 40), bool)
    a[10:20, 10:20] = True
    assert hd95(a, a) == 0.0
    b = np.roll(a, 3, axis=1)  # the same square 3 pixels to the right
    assert hd95(a, b) == 3.0
    assert hd95(a, b, spacing=(0.5, 0.5)) == 1.5  # mm
    assert hd95(a, b, spacing=(1.0, 2.0)) == 6.0  # columns are 2 mm wide
    square = surface(a)
    assert square.sum() == 36 and not square[12:18, 12:18].any()  # the boundary only
    assert math.isnan(hd95(a, np.zeros_like(a)))  # one side empty: undefined
    assert math.isnan(hd95(np.zeros_like(a), np.zeros_like(a)))
    assert hd95(np.zeros_like(a), np.zeros_like(a), both_empty="one") == 0.0


def test_hd95_ignores_the_worst_five_percent():
    a = np.zeros((200, 200), bool)
    a[50:150, 50:150] = True
    b = a.copy()
    b[20, 100] = True  # one stray pixel 30 px away: the Hausdorff distance, not the 95th percentile
    assert hd95(a, b) < 2.0


def test_accumulator_means_pooled_and_counts():
    acc = EvaluationAccumulator(TWO)
    empty = np.zeros((4, 4), np.uint8)
    acc.add("empty.png", empty, empty)  # nothing to find, nothing found: NaN
    half = empty.copy()
    half[:2] = 1
    found = empty.copy()
    found[:2, :2] = 1  # finds half of it
    probs = np.eye(2, dtype=np.float32)[found]
    acc.add("half.png", half, found, probs)
    report = acc.report()
    assert report.images[0]["dice_a"] is None
    assert math.isclose(report.per_class["a"]["dice"], 2 * 4 / (2 * 4 + 4))
    assert math.isclose(report.per_class["a"]["precision"], 1.0) and math.isclose(report.per_class["a"]["recall"], 0.5)
    assert report.both_empty == {"a": 1} and report.hd95_undefined == {"a": 0}
    assert math.isclose(report.foreground_dice, 2 / 3)
    assert math.isclose(report.per_class["a"]["dice_pooled"], 2 / 3)
    one = EvaluationAccumulator(TWO, both_empty="one")
    one.add("empty.png", empty, empty)
    one.add("half.png", half, found)
    assert math.isclose(one.report().per_class["a"]["dice"], (1 + 2 / 3) / 2)


def test_fail_under_gates():
    acc = EvaluationAccumulator(TWO)
    truth = np.zeros((4, 4), np.uint8)
    truth[:2] = 1
    pred = truth.copy()
    pred[1] = 0
    acc.add("x.png", truth, pred)  # Dice 2/3, precision 1, recall 1/2
    report = acc.report()
    assert failed_gates(report, ["dice=0.6", "precision=1", "dice_a=0.5", "recall_pooled_a=0.5"]) == []
    assert failed_gates(report, ["dice=0.7", "recall=0.4"]) == ["dice 0.6667 is under 0.7"]
    with pytest.raises(ConfigError, match="higher is better"):
        failed_gates(report, ["hd95=3"])
    with pytest.raises(ConfigError, match="no foreground class 'b'"):
        failed_gates(report, ["dice_b=0.5"])
    with pytest.raises(ConfigError, match="METRIC=VALUE"):
        failed_gates(report, ["dice"])


def test_seed_metric_counts_background_so_an_empty_prediction_scores_high():
    truth = np.zeros((100, 100), np.uint8)
    truth[:14, :10] = 1  # 1.4% foreground, as NBM
    empty = np.eye(2, dtype=np.float32)[np.zeros_like(truth)]
    assert 0.98 < legacy_dice_coef_multiclass(truth, empty) < 0.99
    assert overlap_scores(confusion_counts(truth, np.zeros_like(truth), 2))["dice"][1] == 0.0


def test_cross_entropy_matches_keras_clip():
    idx = np.array([[0, 1]])
    probs = np.array([[[1.0, 0.0], [1.0, 0.0]]])
    assert math.isclose(cross_entropy(idx, probs), -np.log(1e-7) / 2, rel_tol=1e-6)
