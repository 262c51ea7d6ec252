"""Cross-validation (`split --folds`, `augment`, `train --folds`, `infer` and `evaluate` on the
run folder), with the real `flexseg` in separate processes."""

from __future__ import annotations

import json
import signal

import pytest

from tests.robustness.test_processes import digest, finish, flexseg, start, unchanged, wait_for

CV = ("--set", "data.root=cv", "--set", "run_dir=runs/cv")


@pytest.mark.slow
def test_cross_validation_trains_each_fold_resumes_a_killed_one_and_is_an_ensemble(project):
    assert flexseg("split", "t.yaml", "--folds", "2", *CV, cwd=project)[0] == 0
    rc, text = flexseg("augment", "t.yaml", *CV, cwd=project)
    assert rc == 0 and text.count("augmented pairs") == 2, text  # every fold's train split
    rc, text = flexseg("train", "t.yaml", "--folds", *CV, cwd=project)
    assert rc == 0, text
    assert all(f"fold {k} ({k + 1} of 2)" in text for k in range(2)), text
    run = project / "runs" / "cv"
    assert json.loads((run / "folds.json").read_text())["folds"] == [0, 1]
    # fold 1 trained again and killed after its first epoch: fold 0 is left alone, fold 1 resumes
    longer = (*CV, "--set", "train.epochs=5")
    proc = start("train", "t.yaml", "--fold", "1", "--force", *longer, cwd=project)
    state = run / "fold_1" / ".flexseg-staging" / "resume" / "state.json"
    wait_for(lambda: state.exists() and json.loads(state.read_text())["epoch"] >= 1, proc=proc)
    proc.send_signal(signal.SIGKILL)
    finish(proc)
    others = digest(run / "fold_0")
    rc, text = flexseg("train", "t.yaml", "--folds", "--resume", *longer, cwd=project)
    assert rc == 0, text
    assert "fold 0 (1 of 2): finished earlier" in text, text
    assert "resuming after epoch" in text, text
    unchanged(others, run / "fold_0")
    rows = (run / "fold_1" / "train_losses.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows] == ["epoch", *map(str, range(1, 6))]
    # the run folder is a model: infer and evaluate use the ensemble of its folds
    rc, text = flexseg("infer", "--model", "runs/cv", "--images", "cv/fold_0/test/images", "--output", "o", cwd=project)
    assert rc == 0 and "5 masks" in text, text
    rc, text = flexseg("evaluate", "t.yaml", *CV, cwd=project)
    assert rc == 0, text
    cv = json.loads((run / "cross_validation.json").read_text())
    assert [f["fold"] for f in cv["folds"]] == [0, 1]
    assert cv["ensemble_test"]["foreground_dice"] is not None and "out_of_fold_pooled" in cv
    assert json.loads((run / "evaluation.json").read_text())["folds"] == 2
    decision = json.loads((run / "postprocessing.json").read_text())
    assert [t["step"] for t in decision["tried"]] == ["largest component of all foreground", "largest component of fg"]
    assert "post-processing chosen on the out-of-fold predictions" in text
    images = ("--images", "cv/fold_0/test/images")
    rc, text = flexseg("infer", "--model", "runs/cv", *images, "--output", "p", "--no-postprocessing", cwd=project)
    assert rc == 0, text
    # a fold trained with another experiment is not silently mixed into the ensemble
    rc, text = flexseg("train", "t.yaml", "--folds", *CV, "--set", "model.base_filters=8", cwd=project)
    assert rc == 4 and "fold_0 was trained with another experiment" in text and "model.base_filters" in text, text
