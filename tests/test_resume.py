"""Interruption and resume: a hard kill mid-epoch loses at most that epoch."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time

import keras
import pytest
from typer.testing import CliRunner

from flexseg.cli import app
from flexseg.training.resume import StopOnNaN
from tests.conftest import REPO, tiny_experiment, write_yaml

runner = CliRunner()


@pytest.mark.slow
def test_sigkill_during_epoch_2_then_resume(tiny_data, tmp_path):
    exp = write_yaml(
        tmp_path / "exp.yaml",
        tiny_experiment(
            data={"root": str(tiny_data)}, train={"epochs": 4, "patience": 10}, run_dir=str(tmp_path / "run")
        ),
    )
    run = tmp_path / "run"
    state = run / "resume" / "state.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "flexseg.cli", "train", str(exp)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 300
        while not state.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        assert state.exists(), "epoch 1 never finished"
        proc.send_signal(signal.SIGKILL)  # epoch 2 has just begun
    finally:
        proc.kill()
        proc.wait()
    saved = json.loads(state.read_text())
    assert saved["epoch"] == 1 and not saved["finished"]
    assert (run / "resume" / saved["weights"]).is_file()
    assert len((run / "train_losses.csv").read_text().splitlines()) == 2  # header + epoch 1

    refused = runner.invoke(app, ["train", str(exp)])
    assert refused.exit_code == 4 and "pass --resume to continue it" in refused.stderr

    resumed = runner.invoke(app, ["train", str(exp), "--resume"])
    assert resumed.exit_code == 0, resumed.stderr
    assert "resuming after epoch 1" in resumed.stderr
    rows = (run / "train_losses.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows] == ["epoch", "1", "2", "3", "4"]
    final = json.loads(state.read_text())
    assert final["epoch"] == 4 and final["finished"] and not list((run / "resume").glob("*.h5"))
    assert final["weights"] is None and len(final["history"]) == 4
    written = (run / ".flexseg-written").read_text().split()
    # the last epoch's weights were never written: the run was ending (they would be deleted at once)
    assert "resume/epoch_003.weights.h5" in written and "resume/epoch_004.weights.h5" not in written
    card = json.loads((run / "model.json").read_text())
    assert card["training"]["epochs_run"] == 4 and 1 <= card["training"]["best_epoch"] <= 4
    from flexseg.model.store import load_model

    assert load_model(run).output_shape[-1] == 3
    again = runner.invoke(app, ["train", str(exp), "--resume"])
    assert again.exit_code == 4 and "nothing to resume" in again.stderr


def test_nan_loss_stops_training():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.stop_training = False  # as fit() sets it
    guard = StopOnNaN()
    guard.set_model(model)
    guard.on_epoch_begin(2)
    guard.on_train_batch_end(0, {"loss": 0.5})
    assert guard.nan_epoch is None and not model.stop_training
    guard.on_train_batch_end(1, {"loss": math.nan})
    assert guard.nan_epoch == 3 and model.stop_training


def test_bfloat16_tensorboard_and_environment_record(tiny_data, tmp_path):
    from flexseg.commands.train import train
    from flexseg.config import load_experiment
    from flexseg.model.store import load_model

    exp = load_experiment(
        write_yaml(
            tmp_path / "exp.yaml",
            tiny_experiment(
                data={"root": str(tiny_data)},
                run_dir=str(tmp_path / "run"),
                train={"epochs": 1, "mixed_precision": "bfloat16", "tensorboard": True},
            ),
        )
    )
    result = train(exp)
    assert keras.config.dtype_policy().name == "float32"  # the global policy is put back
    assert list((result.run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    env = json.loads((result.run_dir / "environment.json").read_text())
    assert env["seed"] == 137 and env["packages"]["tensorflow"] and env["packages"]["keras"]
    model = load_model(result.run_dir)
    policies = {layer.dtype_policy.name for layer in model.layers if layer.weights}
    assert "mixed_bfloat16" in policies
    assert model.get_layer("probabilities").dtype_policy.name == "float32"  # the softmax head
    assert math.isfinite(result.best_val_loss)
