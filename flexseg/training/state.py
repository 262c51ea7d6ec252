"""A run's resume state (``resume/state.json``): its schema, its one reader and one writer. No
TensorFlow, so commands can check a run folder before loading it (``resume.py`` makes the save
points). The state owns its counters (``Plateau`` for the LR reducer and early stopping), so
putting a run back reaches into no Keras callback."""

from __future__ import annotations

import math
from pathlib import Path

from pydantic import Field

from flexseg.errors import RunError
from flexseg.schema import Record, read_json, to_json

RESUME_DIR = "resume"
STATE_FILE = "state.json"
VARIABLES_PATTERN = r"^epoch_\d{3,}\.(variables|weights\.h5)$"  # a save point's file, and an older flexseg's


class BestSoFar(Record):
    best: float = math.inf  # the lowest val_loss
    best_epoch: int = Field(0, ge=0)  # 1-based; 0: none yet


class Plateau(Record):
    """How long val_loss has not improved, for the LR reducer and for early stopping
    (``training.plateau``): epochs waited, the best value, the epoch (0-based, as Keras counts)
    of the best, and the epochs of cooldown left after a reduction. The callbacks keep their
    counters in one of these, so the state saves and restores them as they are."""

    wait: int = Field(0, ge=0)
    best: float = math.inf
    best_epoch: int = Field(0, ge=0)
    cooldown_counter: int = Field(0, ge=0)


class ResumeState(Record):
    """The last save point: the epochs done, the variables file holding the weights and optimizer
    state (None once the run finished), the best model so far, the plateau counters and the
    history rows."""

    epoch: int = Field(ge=0)  # the last epoch that finished with a finite loss
    weights: str | None = Field(None, pattern=VARIABLES_PATTERN)
    finished: bool = False
    best: BestSoFar = Field(default_factory=BestSoFar)
    reducer: Plateau = Field(default_factory=Plateau)
    early_stopping: Plateau = Field(default_factory=Plateau)
    history: list[dict[str, float | int | str | None]] = []


def state_path(run_dir: Path) -> Path:
    return run_dir / RESUME_DIR / STATE_FILE


def read_state(run_dir: Path) -> ResumeState | None:
    """The run's resume state, None when it has none; a RunError naming the file when it is
    damaged or not flexseg's."""
    path = state_path(run_dir)
    if not path.exists():
        return None
    return read_json(
        path, ResumeState, what="flexseg resume state", fix="start the run again with --force", error=RunError
    )


def write_state(folder: Path, state: ResumeState) -> None:
    """``state`` as ``folder/state.json``, replaced in one step."""
    from flexseg.fsutil import atomic_write_text

    atomic_write_text(folder / STATE_FILE, to_json(state))
