"""Cross-validation folds: ``split --folds K`` writes ``data.root/fold_0 … fold_K-1``, each a full
train/valid/test folder with one fold as valid (the test split held out once, the same in every
fold). A cross-validated run keeps one complete run per fold in ``<run_dir>/fold_k``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from flexseg.errors import ConfigError, DataError

if TYPE_CHECKING:
    from flexseg.config import Experiment

FOLD_DIR = re.compile(r"^fold_(\d+)$")


def fold_numbers(root: Path | None) -> list[int]:
    """The folds ``split --folds`` wrote under ``root``, in order; empty when there are none."""
    if root is None or not root.is_dir():
        return []
    return sorted(int(m.group(1)) for p in root.iterdir() if p.is_dir() and (m := FOLD_DIR.match(p.name)))


def require_folds(exp: Experiment) -> list[int]:
    folds = fold_numbers(exp.data.root)
    if not folds:
        raise DataError(
            f"data.root {exp.data.root}: no fold_0 … fold_K-1 folders; make them with "
            "`flexseg split EXPERIMENT --folds 5` first"
        )
    if any(getattr(exp.data, s) is not None for s in ("train", "valid", "test")):
        raise ConfigError("data.train/valid/test point at single folders; cross-validation takes data.root's folds")
    return folds


def fold_experiment(exp: Experiment, fold: int) -> Experiment:
    """The experiment for one fold: its data in ``data.root/fold_k``, its run in ``<run_dir>/fold_k``."""
    data = exp.data.model_copy(update={"root": exp.data.root / f"fold_{fold}"})
    return exp.model_copy(update={"data": data, "run_dir": exp.resolved_run_dir / f"fold_{fold}"})
