"""flexseg.tracking without a server: where it logs, what it needs, and that a failing tracker
warns once and never raises (the real MLflow runs are in tests/robustness/test_tracking.py)."""

from __future__ import annotations

import importlib.util

import pytest

from flexseg import console
from flexseg.config import load_experiment
from flexseg.errors import ConfigError
from flexseg.tracking import Tracker, require_tracker, tracking_uri
from tests.conftest import tiny_experiment, write_yaml


def experiment(tmp_path, **train):
    return load_experiment(write_yaml(tmp_path / "e.yaml", tiny_experiment(train={"epochs": 1, **train})), [])


def test_track_mlflow_without_mlflow_is_an_experiment_error(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    with pytest.raises(ConfigError, match=r"train.track: mlflow needs MLflow: pip install 'flexseg\[track\]'"):
        require_tracker(experiment(tmp_path, track="mlflow"))
    require_tracker(experiment(tmp_path))  # track: none needs nothing


def test_the_store_is_the_experiments_then_the_environments_then_sqlite_beside_the_run_folders(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run_dir = tmp_path / "runs" / "x"
    assert tracking_uri(experiment(tmp_path, track="mlflow"), run_dir) == f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://team:5000")
    assert tracking_uri(experiment(tmp_path, track="mlflow"), run_dir) == "http://team:5000"
    chosen = experiment(tmp_path, track="mlflow", track_uri="http://other:5000")
    assert tracking_uri(chosen, run_dir) == "http://other:5000"


def test_a_failing_tracker_warns_once_and_never_raises(capsys):
    console.configure(quiet=False)
    tracker = Tracker("http://down:5000", run_id="r")
    calls = []

    def fail() -> None:
        calls.append(1)
        raise ConnectionError("connection refused\nmore detail")

    assert tracker._call("logging metrics", fail) is None
    assert tracker._call("logging metrics", fail) is None  # not tried again
    tracker.log({"loss": 1.0}, step=1)
    tracker.end("FINISHED")
    err = capsys.readouterr().err
    assert calls == [1] and tracker.failed
    assert err.count("tracking:") == 1 and "http://down:5000" in err and "connection refused" in err
    assert "more detail" not in err  # one line
