"""Resuming a run: the save points, what they hold, and how a run is put back.

A save point holds the model's weights *and optimizer state* in ``resume/epoch_NNN.variables``
(written under a temporary name, then renamed), the best model so far (``model.keras`` and
``model.json``, see :class:`~flexseg.training.callbacks.BestModel`), and then
``resume/state.json``, which names the variables file and holds the epoch, the state of the LR
reducer, early stopping and best-model tracking, and the history rows. The state file is
replaced in one step after everything else is complete, so a kill at any moment leaves a
consistent set: the last save point.

A save point is made after every epoch whose save point costs under ``CHEAP`` seconds, and
otherwise after an epoch once ``1 / MAX_SHARE`` times the last one's cost has passed since it:
checkpoints take at most about 5% of the time (NBM at 512×512 writes 2 GB a save point; with
short epochs, one every epoch was a tenth of the run). An interrupted or killed run keeps its
last save point: at most one save interval of training (about 20 times the cost of a save
point, or one epoch when epochs are longer) is repeated by ``--resume``.

The last epoch of a run (the epoch limit, or early stopping) writes no variables: the run is
ending, and they would be deleted at once. When the run has finished, ``state.json`` records
its last epoch with ``finished: true`` and no variables.

The variables file is a sequence of .npy records: the variables' paths (an array of str), then
one array per variable: the model's, with its layers' random seeds, then the optimizer's. A Keras
``.weights.h5`` leaves the dropout layers' seed state out, so a resumed run drew other dropout
masks than the uninterrupted one would have (``test_variables_file_puts_back_weights_and_optimizer_state``
fails without them). Writing either takes 2-4 s for NBM's 1.4 GB on the 2-core hosts, varying
from one write to the next by more than between the two: the disk sets the pace. Runs saved by
earlier versions of flexseg hold a Keras ``epoch_NNN.weights.h5`` instead; both are read.
"""

from __future__ import annotations

import math
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

from flexseg import tfenv  # noqa: I001 (TensorFlow's settings before it loads)

tfenv.load_tensorflow()

import keras
import numpy as np

from flexseg.errors import RunError
from flexseg.fsutil import note_write, public_mode
from flexseg.training.plateau import ReduceOnPlateau, StopOnPlateau
from flexseg.training.state import (  # noqa: F401 (re-exported)
    RESUME_DIR,
    STATE_FILE,
    VARIABLES_PATTERN,
    BestSoFar,
    ResumeState,
    read_state,
    state_path,
    write_state,
)

VARIABLES_NAME = re.compile(VARIABLES_PATTERN)

if TYPE_CHECKING:
    from flexseg.training.callbacks import BestModel, HistoryFiles

CHEAP = 1.0  # seconds: a save point costing less is made after every epoch
MAX_SHARE = 0.05  # otherwise, at most this share of the time goes into save points


def _variables(model: keras.Model) -> list:
    """The model's variables (its weights and its layers' random seeds, so that dropout goes on
    as it would have) and then its optimizer's, in a fixed order."""
    return [*model.variables, *model.optimizer.variables]


def write_variables(model: keras.Model, path: Path) -> None:
    """All of ``_variables(model)``, as a sequence of .npy records (see the module's text)."""
    variables = _variables(model)
    with open(path, "wb") as f:
        np.save(f, np.array([v.path for v in variables], dtype=str))
        for v in variables:
            np.save(f, keras.ops.convert_to_numpy(v))
    os.chmod(path, public_mode())


def read_variables(model: keras.Model, path: Path) -> None:
    """Put a variables file back into ``model`` (compiled, its optimizer built); refuse a file
    whose variables differ from the model's in number or shape, or that is cut short."""
    variables = _variables(model)
    try:
        with open(path, "rb") as f:
            names = list(np.load(f, allow_pickle=False))
            arrays = [np.load(f, allow_pickle=False) for _ in names]
    except (OSError, EOFError, ValueError) as e:
        raise ValueError(f"truncated or unreadable ({e})") from None
    if len(names) != len(variables):  # (names are for reading; Keras numbers layer names per process)
        raise ValueError(f"it holds {len(names)} variables, the model has {len(variables)}")
    for v, a in zip(variables, arrays):
        if tuple(a.shape) != tuple(v.shape):
            raise ValueError(f"{v.path} is {tuple(a.shape)} there and {tuple(v.shape)} in the model")
    for v, a in zip(variables, arrays):
        v.assign(a)


class ResumeCheckpoint(keras.callbacks.Callback):
    """Make the save points; put a saved state back at the start of training.

    Listed after the callbacks whose state it carries, so its on_train_begin runs after
    theirs (which reset themselves) and its on_epoch_end sees their updated state.
    """

    def __init__(
        self,
        run_dir: Path,
        best: BestModel,
        reducer: ReduceOnPlateau,
        stopper: StopOnPlateau,
        history: HistoryFiles,
        state: ResumeState | None = None,
    ) -> None:
        super().__init__()
        self.folder = run_dir / RESUME_DIR
        self.best, self.reducer, self.stopper, self.history = best, reducer, stopper, history
        self.state = state
        self.epoch = state.epoch if state else 0  # the last epoch that finished with a finite loss
        self.written = state  # the last save point's state
        self.cost = 0.0  # seconds the last save point took
        self.saved_at = time.perf_counter()  # when it was made

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.saved_at = time.perf_counter()
        if self.state is None:
            return  # (files a hard kill left half-written are removed when the run folder is opened: flexseg.runs)
        s = self.state
        self.best.restore(s.best.best, s.best.best_epoch)
        self.reducer.state, self.stopper.state = s.reducer.model_copy(), s.early_stopping.model_copy()
        self.history.rows = list(s.history)

    def due(self) -> bool:
        """Whether a save point is made now: it is cheap, or enough time has passed since the last."""
        return self.cost < CHEAP or (time.perf_counter() - self.saved_at) * MAX_SHARE >= self.cost

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if not math.isfinite(float((logs or {}).get("loss", math.nan))):
            return  # never save a diverged state over the last good one
        self.epoch = epoch + 1
        if self.epoch >= self.params.get("epochs", math.inf) or self.model.stop_training:
            # the run ends here: its variables would be deleted by mark_finished at once (NBM: 1.5 GB).
            # The best model is written by the trainer when fit returns; a kill before that
            # leaves the last save point, so --resume repeats the epochs since.
            return
        if not self.due():
            return
        started = time.perf_counter()
        self.best.save()
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"epoch_{self.epoch:03d}.variables"
        tmp = self.folder / f".partial-{name}"
        note_write(self.folder / name)
        write_variables(self.model, tmp)
        os.replace(tmp, self.folder / name)
        self._write_state(self._state(name, finished=False))
        self._remove_variables(keep=name)
        self.saved_at = time.perf_counter()
        self.cost = self.saved_at - started

    def _state(self, weights: str | None, finished: bool) -> ResumeState:
        return ResumeState(
            epoch=self.epoch,
            weights=weights,
            finished=finished,
            best=BestSoFar(best=self.best.best, best_epoch=self.best.best_epoch),
            reducer=self.reducer.state.model_copy(),
            early_stopping=self.stopper.state.model_copy(),
            history=list(self.history.rows),
        )

    def keep_best(self) -> None:
        """For a run that stops early (interrupted, or its loss diverged): write the best model if
        no save point has, and record it in the last save point's state, so that a resumed run
        replaces it only with a better one."""
        self.best.save()
        if self.written is not None and self.written.best.best_epoch != self.best.best_epoch:
            best = BestSoFar(best=self.best.best, best_epoch=self.best.best_epoch)
            self._write_state(self.written.model_copy(update={"best": best}))

    def mark_finished(self) -> None:
        """The run ended normally (the best model is written): the state of its last epoch records
        the run; no variables are kept."""
        if self.epoch:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._write_state(self._state(None, finished=True))
        self._remove_variables()

    def _write_state(self, state: ResumeState) -> None:
        self.written = state
        write_state(self.folder, state)

    def _remove_variables(self, keep: str | None = None) -> None:
        """The variables files (and an earlier flexseg's .weights.h5) but ``keep``: only names of that
        exact form that the run folder's record lists (a user's resume/epoch_notes.txt stays)."""
        from flexseg.runs import remove_written

        if not self.folder.is_dir():
            return
        for old in sorted(self.folder.iterdir()):
            if old.name != keep and VARIABLES_NAME.fullmatch(old.name):
                remove_written(old)


def restore_model(model: keras.Model, run_dir: Path, state: ResumeState) -> None:
    """Weights and optimizer state of the last save point into ``model``, compiled and with its
    optimizer built (``training.fit.compiled_model``)."""
    if state.weights is None:
        raise RunError(f"{state_path(run_dir)}: the run finished; nothing to resume (--force starts it again)")
    path = run_dir / RESUME_DIR / state.weights
    if not path.exists():
        raise RunError(f"{path}: the resume checkpoint is missing; start again with --force")
    try:
        if path.name.endswith(".weights.h5"):  # saved by an earlier flexseg
            model.load_weights(path)
        else:
            read_variables(model, path)
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
