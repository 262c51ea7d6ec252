"""Resuming a run: what is saved after every epoch, and how it is put back.

After each finished epoch the model's weights *and optimizer state* go into
``resume/epoch_NNN.weights.h5`` (written under a temporary name, then renamed), and then
``resume/state.json`` names that file and holds the epoch, the state of the LR reducer,
early stopping and best-model tracking, and the history rows. The state file is replaced in
one step after the weights are complete, so a hard kill at any moment leaves a consistent
pair: at most the epoch in progress is lost.

The last epoch of a run (the epoch limit, or early stopping) writes no weights: the run is
ending, and its weights would be deleted at once. When the run has finished, ``state.json``
records its last epoch with ``finished: true`` and no weights. A kill between the last epoch
and that moment leaves the previous epoch's state: ``--resume`` repeats the last epoch.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

from flexseg import tfenv  # noqa: I001 (TensorFlow's settings before it loads)

tfenv.load_tensorflow()

import keras

from flexseg.errors import RunError
from flexseg.fsutil import atomic_write_text, note_write
from flexseg.training.state import RESUME_DIR, STATE_FILE, read_state, state_path  # noqa: F401 (re-exported)

if TYPE_CHECKING:
    from flexseg.training.callbacks import BestModel, HistoryFiles


class ResumeCheckpoint(keras.callbacks.Callback):
    """Save the resume state after each epoch; put a saved state back at the start of training.

    Listed after the callbacks whose state it carries, so its on_train_begin runs after
    theirs (which reset themselves) and its on_epoch_end sees their updated state.
    """

    def __init__(
        self,
        run_dir: Path,
        best: BestModel,
        reducer: keras.callbacks.ReduceLROnPlateau,
        stopper: keras.callbacks.EarlyStopping,
        history: HistoryFiles,
        state: dict | None = None,
    ) -> None:
        super().__init__()
        self.folder = run_dir / RESUME_DIR
        self.best, self.reducer, self.stopper, self.history = best, reducer, stopper, history
        self.state = state
        self.epoch = state["epoch"] if state else 0  # the last epoch that finished with a finite loss

    def on_train_begin(self, logs: dict | None = None) -> None:
        if self.state is None:
            return  # (files a hard kill left half-written are removed when the run folder is opened: flexseg.runs)
        s = self.state
        self.best.best, self.best.best_epoch = s["best"]["best"], s["best"]["best_epoch"]
        self.reducer.wait, self.reducer.best, self.reducer.cooldown_counter = (
            s["reducer"]["wait"],
            s["reducer"]["best"],
            s["reducer"]["cooldown_counter"],
        )
        self.stopper.wait, self.stopper.best, self.stopper.best_epoch = (
            s["early_stopping"]["wait"],
            s["early_stopping"]["best"],
            s["early_stopping"]["best_epoch"],
        )
        self.history.rows = list(s["history"])

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if not math.isfinite(float((logs or {}).get("loss", math.nan))):
            return  # never save a diverged state over the last good one
        self.epoch = epoch + 1
        if self.epoch >= self.params.get("epochs", math.inf) or self.model.stop_training:
            # the run ends here: its weights would be deleted by mark_finished at once (NBM: 1.5 GB).
            # A kill before that leaves the previous epoch's state, so --resume repeats this epoch.
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"epoch_{self.epoch:03d}.weights.h5"
        tmp = self.folder / f".partial-{name}"  # Keras wants the .weights.h5 ending
        note_write(self.folder / name)
        self.model.save_weights(tmp)
        os.replace(tmp, self.folder / name)
        atomic_write_text(self.folder / STATE_FILE, json.dumps(self._state(name, finished=False), indent=1))
        for old in self.folder.glob("*.weights.h5"):
            if old.name != name:
                old.unlink()

    def _state(self, weights: str | None, finished: bool) -> dict:
        return {
            "epoch": self.epoch,
            "weights": weights,
            "finished": finished,
            "best": {"best": self.best.best, "best_epoch": self.best.best_epoch},
            "reducer": {
                "wait": self.reducer.wait,
                "best": float(self.reducer.best),
                "cooldown_counter": self.reducer.cooldown_counter,
            },
            "early_stopping": {
                "wait": self.stopper.wait,
                "best": float(self.stopper.best),
                "best_epoch": self.stopper.best_epoch,
            },
            "history": self.history.rows,
        }

    def mark_finished(self) -> None:
        """The run ended normally: the state of its last epoch records the run; no weights are kept."""
        if self.epoch:
            self.folder.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.folder / STATE_FILE, json.dumps(self._state(None, finished=True), indent=1))
        for old in self.folder.glob("*.weights.h5"):
            old.unlink()


def restore_model(model: keras.Model, run_dir: Path, state: dict) -> None:
    """Weights and optimizer state of the last finished epoch into a compiled ``model``."""
    path = run_dir / RESUME_DIR / state["weights"]
    if not path.exists():
        raise RunError(f"{path}: the resume checkpoint is missing; start again with --force")
    model.optimizer.build(model.trainable_variables)
    try:
        model.load_weights(path)
    except ValueError as e:
        raise RunError(
            f"{path} does not fit this experiment's model ({e}); resume with the experiment the run "
            "started with, or start again with --force"
        ) from None


class StopOnNaN(keras.callbacks.Callback):
    """Stop at the first batch whose loss is not finite, or after an epoch whose val_loss is not;
    the trainer turns it into an error."""

    def __init__(self) -> None:
        super().__init__()
        self.epoch = 0
        self.nan_epoch: int | None = None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._check(logs, ("loss",))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._check(logs, ("val_loss",))

    def _check(self, logs: dict | None, keys: tuple[str, ...]) -> None:
        if any(not math.isfinite(float((logs or {}).get(key, 0.0))) for key in keys):
            self.nan_epoch = self.epoch
            self.model.stop_training = True
