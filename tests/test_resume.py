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
from tests.conftest import REPO, read_record, tiny_experiment, write_yaml

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
    assert final["epoch"] == 4 and final["finished"] and not list((run / "resume").glob("epoch_*"))
    assert final["weights"] is None and len(final["history"]) == 4
    written = read_record(run)
    # the last epoch's variables were never written: the run was ending (they would be deleted at once)
    assert "resume/epoch_003.variables" in written and "resume/epoch_004.variables" not in written
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


def _small_model(filters: int = 4) -> keras.Model:
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(filters, 3, padding="same"),
            keras.layers.BatchNormalization(),
            keras.layers.Dropout(0.2),
            keras.layers.Conv2D(2, 1, activation="softmax"),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="categorical_crossentropy")
    return model


def test_variables_file_puts_back_weights_and_optimizer_state(tmp_path):
    import numpy as np

    from flexseg.training.resume import read_variables, write_variables

    rng = np.random.default_rng(0)
    x = rng.random((4, 8, 8, 1), dtype=np.float32)
    y = np.eye(2, dtype=np.float32)[rng.integers(0, 2, (4, 8, 8))]
    trained = _small_model()
    trained.fit(x, y, epochs=2, verbose=0)
    trained.optimizer.learning_rate.assign(3e-3)  # as ReduceLROnPlateau does
    path = tmp_path / "epoch_002.variables"
    write_variables(trained, path)

    fresh = _small_model()
    fresh.optimizer.build(fresh.trainable_variables)
    read_variables(fresh, path)
    for a, b in zip([*trained.variables, *trained.optimizer.variables], [*fresh.variables, *fresh.optimizer.variables]):
        assert np.array_equal(np.asarray(a), np.asarray(b)), a.path
    assert int(fresh.optimizer.iterations) == 2 and float(fresh.optimizer.learning_rate) == np.float32(3e-3)
    # both continue the same way: one more step each gives the same weights
    trained.train_on_batch(x, y)
    fresh.train_on_batch(x, y)
    assert all(np.array_equal(a, b) for a, b in zip(trained.get_weights(), fresh.get_weights()))

    other = _small_model(filters=6)
    other.optimizer.build(other.trainable_variables)
    with pytest.raises(ValueError, match="is \\(3, 3, 1, 4\\) there and \\(3, 3, 1, 6\\) in the model"):
        read_variables(other, path)
    truncated = tmp_path / "truncated.variables"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated"):
        read_variables(fresh, truncated)


def test_save_points_are_made_every_epoch_when_cheap_and_at_most_5_percent_of_the_time_when_not(monkeypatch):
    from flexseg.training import resume

    clock = [100.0]
    monkeypatch.setattr(resume.time, "perf_counter", lambda: clock[0])
    checkpoint = resume.ResumeCheckpoint.__new__(resume.ResumeCheckpoint)
    checkpoint.cost, checkpoint.saved_at = 0.2, 100.0
    assert checkpoint.due()  # cheap: every epoch
    checkpoint.cost = 3.0  # NBM at 512×512: 2 GB a save point
    clock[0] = 159.0
    assert not checkpoint.due()
    clock[0] = 160.0
    assert checkpoint.due()


def test_best_model_kept_in_memory_between_save_points_is_the_one_written(tmp_path):
    """Between save points the best epoch's weights wait in memory; writing them must write that
    epoch's model, leave the model being trained as it was, and record it in the last state."""
    import numpy as np

    from flexseg.model.store import load_model
    from flexseg.training.callbacks import BestModel, HistoryFiles
    from flexseg.training.resume import ResumeCheckpoint

    model = _small_model()
    best = BestModel(tmp_path)
    best.set_model(model)
    from flexseg.training.plateau import ReduceOnPlateau, StopOnPlateau

    reducer, stopper = ReduceOnPlateau(factor=0.5, patience=4), StopOnPlateau(patience=10)
    for callback in (reducer, stopper):
        callback.set_model(model)
    checkpoint = ResumeCheckpoint(tmp_path, best, reducer, stopper, HistoryFiles(tmp_path))
    checkpoint.set_model(model)
    checkpoint.params = {"epochs": 10}
    model.optimizer.build(model.trainable_variables)

    def epoch(index: int, val_loss: float, scale: float) -> list:
        best.on_epoch_begin(index)
        weights = [np.full_like(w, scale) for w in model.get_weights()]
        model.set_weights(weights)  # as training would have changed them
        for callback in (best, reducer, stopper):
            callback.on_epoch_end(index, {"val_loss": val_loss})
        checkpoint.on_epoch_end(index, {"loss": 1.0, "val_loss": val_loss})
        return weights

    epoch(0, 0.9, 0.1)  # the first save point (none has cost anything yet)
    assert json.loads((tmp_path / "resume" / "state.json").read_text())["best"]["best_epoch"] == 1
    checkpoint.cost = 1e9  # no save point after the next epochs
    best_weights = epoch(1, 0.5, 0.2)
    epoch(2, 0.7, 0.3)
    live = epoch(3, 0.8, 0.4)
    assert best.best_epoch == 2 and best.saved_epoch == 1 and best.copy is not None

    checkpoint.keep_best()  # as Ctrl-C does
    written = load_model(tmp_path)
    assert all(np.array_equal(a, b) for a, b in zip(written.get_weights(), best_weights))
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), live))  # training's weights are back
    state = json.loads((tmp_path / "resume" / "state.json").read_text())
    assert state["epoch"] == 1 and state["best"] == {"best": 0.5, "best_epoch": 2}
    assert best.saved_epoch == 2 and best.copy is None
