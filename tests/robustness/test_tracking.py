"""train.track: mlflow with the real `flexseg` in separate processes: a cross-validation tracked
in a local SQLite store, read back with MLflow's own client; a tracking server that is down never
fails a training."""

from __future__ import annotations

import json
import time

import pytest

from tests.robustness.test_processes import flexseg

mlflow = pytest.importorskip("mlflow", reason="the track extra: pip install -e '.[track]' (make test-long installs it)")

CV = ("--set", "data.root=cv", "--set", "run_dir=runs/cv", "--set", "train.epochs=2")
TRACK = ("--set", "train.track=mlflow")


@pytest.mark.slow
def test_a_tracked_cross_validation_is_a_run_with_a_child_run_a_fold_and_its_test_scores(project):
    from mlflow.tracking import MlflowClient

    assert flexseg("split", "t.yaml", "--folds", "2", *CV, cwd=project)[0] == 0
    rc, text = flexseg("train", "t.yaml", "--folds", *CV, *TRACK, cwd=project)
    assert rc == 0 and "tracking:" not in text, text
    store = project / "runs" / "mlflow.db"  # beside the run folder: the project's runs share it
    assert store.is_file()
    client = MlflowClient(tracking_uri=f"sqlite:///{store}")
    experiment = client.get_experiment_by_name("t")
    found = client.search_runs([experiment.experiment_id])
    parents = [r for r in found if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    assert json.loads((project / "runs" / "cv" / "tracking.json").read_text())["run_id"] == parent.info.run_id
    children = sorted(
        (r for r in found if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id), key=lambda r: r.info.run_name
    )
    assert [r.info.run_name for r in children] == ["fold_0", "fold_1"] and len(found) == 3
    for k, child in enumerate(children):
        assert child.info.status == "FINISHED"
        assert child.data.params["train.learning_rate"] == "0.0001" and child.data.params["train.track"] == "mlflow"
        assert child.data.params["data.root"].endswith(f"cv/fold_{k}")
        history = client.get_metric_history(child.info.run_id, "val_loss")
        assert [m.step for m in history] == [1, 2]
        logged = [round(m.value, 5) for m in history]
        rows = (project / "runs" / "cv" / f"fold_{k}" / "train_losses.csv").read_text().splitlines()[1:]
        assert logged == [round(float(r.split(",")[2]), 5) for r in rows]  # the values of the run folder
        assert {"loss", "learning_rate", "seconds", "foreground_dice"} <= set(child.data.metrics)
        assert "model.json" in [a.path for a in client.list_artifacts(child.info.run_id)]

    rc, text = flexseg("evaluate", "t.yaml", *CV, *TRACK, cwd=project)
    assert rc == 0 and "tracking:" not in text, text
    scored = json.loads((project / "runs" / "cv" / "evaluation.json").read_text())
    metrics = client.get_run(parent.info.run_id).data.metrics
    assert metrics["test_foreground_dice"] == pytest.approx(scored["foreground_dice"])
    assert metrics["test_dice_fg"] == pytest.approx(scored["per_class"]["fg"]["dice"])
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"report.html", "evaluation.json", "report"} <= artifacts
    assert "report/cases.json" in {a.path for a in client.list_artifacts(parent.info.run_id, "report")}


@pytest.mark.slow
def test_a_tracking_server_that_is_down_never_fails_a_training(project):
    down = ("--set", "train.track_uri=http://127.0.0.1:9")  # the discard port: nothing listens
    t0 = time.monotonic()
    rc, text = flexseg("train", "t.yaml", "--force", "--set", "train.epochs=2", *TRACK, *down, cwd=project)
    assert rc == 0, text
    assert time.monotonic() - t0 < 180
    warnings = [line for line in text.splitlines() if "tracking:" in line]
    assert len(warnings) == 1 and "127.0.0.1:9" in warnings[0] and "going on without tracking" in warnings[0], text
    run = project / "runs" / "t"
    assert (run / "model.keras").is_file() and not (run / "tracking.json").exists()
    card = json.loads((run / "model.json").read_text())
    assert card["training"]["epochs_run"] == 2
