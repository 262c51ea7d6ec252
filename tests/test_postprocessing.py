"""Post-processing chosen by evidence (flexseg.evaluation.postprocessing): kept where it raises
the pooled Dice and lowers no class, rejected where it deletes true components."""

from __future__ import annotations

import numpy as np

from flexseg.evaluation.postprocessing import decide, pooled_dice
from flexseg.inference import PredictOptions, Predictor
from flexseg.inference.postprocess import keep_largest

NAMES = ["background", "a", "b"]


def blob(mask: np.ndarray, y: int, x: int, size: int, value: int) -> None:
    mask[y : y + size, x : x + size] = value


def test_a_speck_far_from_the_object_is_removed_and_kept_as_the_decision():
    truths, preds = [], []
    for i in range(4):
        truth = np.zeros((40, 40), np.uint8)
        blob(truth, 5, 5, 12, 1)
        pred = truth.copy()
        blob(pred, 30 + i % 3, 30, 3, 1)  # a false positive of class a
        truths.append(truth)
        preds.append(pred)
    decision = decide(truths, preds, NAMES)
    assert decision["largest_component_of_foreground"] is True
    before, after = decision["out_of_fold_pooled_dice"]["before"], decision["out_of_fold_pooled_dice"]["after"]
    assert after[0] > before[0] and after[0] == 1.0


def test_several_true_components_of_one_class_are_never_cut_down_to_one():
    """As the knee: one class "bone" holds several bones; keeping one would delete the others."""
    truths, preds = [], []
    for _ in range(3):
        truth = np.zeros((40, 40), np.uint8)
        blob(truth, 2, 2, 10, 1)
        blob(truth, 25, 25, 8, 1)  # a second bone, smaller
        pred = truth.copy()
        pred[2, 2:12] = 0  # a slightly imperfect prediction
        truths.append(truth)
        preds.append(pred)
    decision = decide(truths, preds, NAMES)
    assert decision["largest_component_of_foreground"] is False and decision["largest_component_of_classes"] == []
    tried = {t["step"]: t for t in decision["tried"]}
    assert tried["largest component of a"]["dice_after"][0] < tried["largest component of a"]["dice_before"][0]


def test_per_class_decision_keeps_one_class_and_leaves_the_other():
    truths, preds = [], []
    for _ in range(3):
        truth = np.zeros((48, 48), np.uint8)
        blob(truth, 2, 2, 10, 1)  # a: one object
        blob(truth, 30, 2, 6, 2)  # b: two objects
        blob(truth, 30, 30, 6, 2)
        pred = truth.copy()
        blob(pred, 40, 16, 2, 1)  # a speck of a: a false positive
        truths.append(truth)
        preds.append(pred)
    decision = decide(truths, preds, NAMES)
    # all foreground together would delete b's objects: rejected; a's speck goes, b stays whole
    assert decision["largest_component_of_foreground"] is False
    assert decision["largest_component_of_classes"] == ["a"]
    assert pooled_dice(truths, [keep_largest(p, classes=(1,)) for p in preds], 3) == [1.0, 1.0]


def test_the_predictor_applies_a_recorded_decision():
    probs = np.zeros((20, 20, 3), np.float32)
    probs[..., 0] = 1.0
    probs[2:8, 2:8] = [0, 1, 0]
    probs[15:17, 15:17] = [0, 1, 0]  # a speck of a
    decision = {"largest_component_of_foreground": False, "largest_component_of_classes": ["a"]}
    options = PredictOptions().with_decision(decision, NAMES)
    assert options.largest_of_classes == (1,)
    labels = Predictor([object()], None, options).labels(probs)
    assert labels[3, 3] == 1 and labels[15, 15] == 0
    assert Predictor([object()], None, PredictOptions()).labels(probs)[15, 15] == 1


def u_shaped_volume() -> np.ndarray:
    """One object of class a, bent like a U through the slices: slices 2–5 show its two arms
    apart, slice 1 the bottom that joins them. In 3D one component; in each of slices 2–5, two."""
    volume = np.zeros((6, 30, 30), np.uint8)
    volume[1, 5:25, 5:25] = 1
    volume[2:6, 5:12, 5:25] = 1
    volume[2:6, 18:25, 5:25] = 1
    return volume


def test_the_decision_for_volumes_is_taken_in_3d():
    truth = u_shaped_volume()
    pred = truth.copy()
    pred[4, 28:30, 28:30] = 1  # a speck of a, apart from the object in 3D
    in_3d = decide([truth], [pred], NAMES)
    assert in_3d["largest_component_of_foreground"] is True  # the speck goes, the U stays whole
    assert in_3d["out_of_fold_pooled_dice"]["after"][0] == 1.0
    in_2d = decide(list(truth), list(pred), NAMES)  # slice by slice, one arm of the U would go
    assert in_2d["largest_component_of_foreground"] is False and in_2d["largest_component_of_classes"] == []


def test_evaluate_stacks_only_whole_volumes():
    from flexseg.commands.evaluate import _volumes_of

    origins = {f"a_{k}.png": ("a.nii.gz", k) for k in range(3)} | {f"b_{k}.png": ("b.nii.gz", k) for k in (0, 2)}
    geometry = {"a.nii.gz": {"slices": 3}, "b.nii.gz": {"slices": 3}}
    pending = {name: (np.zeros((4, 4), np.uint8),) for name in ["a_2.png", "b_2.png", "a_0.png", "b_0.png", "a_1.png"]}
    assert _volumes_of(pending, origins, geometry) == [["a_0.png", "a_1.png", "a_2.png"], ["b_0.png"], ["b_2.png"]]
