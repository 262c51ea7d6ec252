"""flexseg train: fit a FlexUNet on the experiment's train split, validating on its valid split.

This module checks the experiment, the data and the run folder; ``training.fit`` builds and fits
the model. TensorFlow is loaded only once the checks have passed.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from flexseg import console as out
from flexseg import runs, settings
from flexseg.config import Experiment
from flexseg.data.audit import check_pairs, check_slice_mapping
from flexseg.data.classes import ClassMap
from flexseg.data.pairing import split_pairs
from flexseg.errors import ConfigError, RunError
from flexseg.fsutil import atomic_write_text
from flexseg.tracking import TrackedRun, Tracker, require_tracker
from flexseg.training.state import RESUME_DIR, read_state

if TYPE_CHECKING:
    from collections.abc import Callable

    from flexseg.training.callbacks import ProgressReporter
    from flexseg.training.distribute import Distribution
    from flexseg.training.fit import TrainResult
    from flexseg.training.state import ResumeState


# keys a resumed run must share with the run it continues (epochs, patience, learning rate may change)
RESUME_FIXED = (
    "classes",
    "image",
    "model",
    "data",
    "augment",
    "train.loss",
    "train.batch_size",
    "train.mixed_precision",
    "train.distribute",
)


def _resume_state(folder: Path, exp: Experiment) -> dict:
    state = read_state(folder)
    if state is None:
        raise RunError(f"{folder}: nothing to resume (no {RESUME_DIR}/state.json); start the run without --resume")
    if state.finished:
        raise RunError(
            f"{folder}: the run finished after epoch {state.epoch}; nothing to resume (--force starts it again)"
        )
    _check_same_experiment(folder, exp)
    if state.epoch >= exp.train.epochs:
        raise RunError(
            f"{folder}: already at epoch {state.epoch} of train.epochs={exp.train.epochs}; "
            "raise train.epochs to train longer"
        )
    return state


def _check_same_experiment(folder: Path, exp: Experiment, for_folds: bool = False) -> None:
    """A resumed run continues the same model on the same data, and a cross-validation's folds are
    one experiment: refuse changed keys, naming them."""
    from flexseg.config import load_experiment
    from flexseg.errors import FlexsegError

    try:
        before = load_experiment(folder / "experiment.yaml").model_dump(mode="json")
    except FlexsegError as e:
        raise RunError(
            f"{folder}: cannot read the experiment the run started with ({e}); start again with --force"
        ) from None
    now = exp.model_dump(mode="json")

    def flat(tree: dict, prefix: str = ""):
        if isinstance(tree, dict):
            return {k: v for key, value in tree.items() for k, v in flat(value, f"{prefix}{key}.").items()}
        return {prefix.rstrip("."): tree}

    a, b = flat(before), flat(now)
    changed = sorted(
        k
        for k in set(a) | set(b)
        if a.get(k) != b.get(k) and any(k == f or k.startswith(f + ".") for f in RESUME_FIXED)
    )
    if changed:
        shown = "; ".join(f"{k}: {str(a.get(k))[:40]} → {str(b.get(k))[:40]}" for k in changed[:4])
        if for_folds:
            raise RunError(
                f"{folder} was trained with another experiment ({shown}); the folds of a cross-validation are "
                "one experiment: use the one it was trained with, or --force to train every fold again"
            )
        raise RunError(
            f"--resume continues the run in {folder} with another experiment ({shown}"
            f"{' …' if len(changed) > 4 else ''}); resume with the experiment it started with, or "
            "start again with --force"
        )


def _check_tensorboard(exp: Experiment) -> None:
    import importlib.util

    if exp.train.tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise ConfigError(
            "train.tensorboard: true needs the tensorboard package: pip install tensorboard "
            "(or pip install -e '.[tensorboard]'), or set train.tensorboard: false"
        )


def train(
    exp: Experiment,
    *,
    force: bool = False,
    resume: bool = False,
    reporter: ProgressReporter | None = None,
    tracking_parent: TrackedRun | None = None,
) -> TrainResult:
    """Train into the run folder; ``reporter`` shows progress (default: a line per epoch, see
    ``training.callbacks.EpochLines``). A run that replaces an earlier one (``force``) is written into
    the folder's staging area and put in place only when it has finished: until then, and if it
    fails, the earlier run stays as it was; an interrupted one can be continued with ``resume``.
    ``tracking_parent``: the cross-validation's MLflow run, for a fold (flexseg.tracking)."""
    _check_tensorboard(exp)
    require_tracker(exp)
    if force and resume:
        raise RunError("--force starts the run again and --resume continues it; choose one")
    # several processes or devices: the strategy first, before any other TensorFlow work (and this
    # worker may not be the chief, which alone writes the run folder); one device: after the checks
    dist = _distribution(exp) if _several(exp) else None
    run_dir = exp.resolved_run_dir
    class_map = ClassMap.from_experiment(exp)
    check_slice_mapping(exp)
    train_pairs = split_pairs(exp, "train")
    valid_pairs = split_pairs(exp, "valid")
    if dist is not None and not dist.is_chief:  # other workers write to a scratch folder
        from flexseg.training.fit import fit

        scratch = Path(tempfile.mkdtemp(prefix="flexseg-worker-"))
        try:
            state = _resume_state(run_dir, exp) if resume else None
            return fit(exp, dist, run_dir, scratch, state, class_map, train_pairs, valid_pairs, reporter)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    with runs.open_output(run_dir, "train", legacy_names=runs.RUN_LEGACY_NAMES) as folder:
        staging = folder.staging()
        staged_state = read_state(staging) if staging.is_dir() else None
        if resume:
            write_dir = staging if staged_state is not None else run_dir
            state = _resume_state(write_dir, exp)
        else:
            state = None
            _check_run_dir_free(folder, staged_state, force)
            write_dir = staging if _holds_run(folder) else run_dir
        audit = check_pairs(train_pairs + valid_pairs, class_map)
        if (message := audit.summary(class_map.tolerance)) is not None:
            out.warn(message)
        dist = dist or _distribution(exp)  # TensorFlow loads here
        from flexseg.training.fit import fit

        if write_dir == run_dir:
            runs.discard_staging(folder)
            return fit(
                exp, dist, run_dir, run_dir, state, class_map, train_pairs, valid_pairs, reporter, tracking_parent
            )
        out.info(f"the new run is written beside the earlier one and replaces it when it has finished ({staging})")
        with runs.staged(folder, fresh=state is None, keep_on_failure=lambda: read_state(staging) is not None):
            result = fit(
                exp, dist, run_dir, staging, state, class_map, train_pairs, valid_pairs, reporter, tracking_parent
            )
            runs.promote(folder)
        return result


@dataclass
class FoldsResult:
    run_dir: Path
    trained: dict[int, TrainResult]  # fold → its result, for the folds trained now
    left: list[int]  # folds finished earlier and left as they are


def train_folds(
    exp: Experiment,
    *,
    fold: int | None = None,
    force: bool = False,
    resume: bool = False,
    reporter: ProgressReporter | None = None,
) -> FoldsResult:
    """Cross-validation: train every fold of a split made with ``split --folds K`` (or only
    ``fold``), each a complete run in ``<run_dir>/fold_k``; the run folder is locked as one run
    the whole time and records its folds in folds.json, which makes it a model: ``infer`` and
    ``evaluate`` use the ensemble of its folds. A finished fold is left as it is (``force``
    trains it again); an interrupted one continues with ``resume``; a fold not yet started is
    trained from its beginning either way."""
    from flexseg.data.folds import require_folds
    from flexseg.model.store import FOLDS_FILE, MODEL_FILE

    require_tracker(exp)
    folds = require_folds(exp)
    if fold is not None and fold not in folds:
        raise ConfigError(f"--fold {fold}: {exp.data.root} has folds {', '.join(map(str, folds))}")
    run_dir = exp.resolved_run_dir
    with runs.open_output(run_dir, "train --folds"):
        if (run_dir / MODEL_FILE).exists():
            raise RunError(
                f"{run_dir} holds a single run (model.keras); a cross-validation needs a run folder of its own: "
                "set run_dir, or move that run away"
            )
        chosen = [fold] if fold is not None else folds
        # folds a --force pass has still to replace: an interrupted --force goes on with --resume
        earlier = _read_folds_record(run_dir)
        pending = set(chosen) if force else set(earlier.get("replacing", [])) & set(folds)

        def record() -> None:
            data = {"folds": folds, "data_root": str(exp.data.root), "replacing": sorted(pending)}
            atomic_write_text(run_dir / FOLDS_FILE, json.dumps(data, indent=1) + "\n")

        record()
        result = FoldsResult(run_dir, {}, [])
        tracker = Tracker.start(exp, run_dir, run_dir, resume=True)  # the folds' parent run: one per cross-validation
        parent = TrackedRun(uri=tracker.uri, run_id=tracker.run_id) if tracker and tracker.run_id else None
        try:
            _train_chosen_folds(exp, chosen, pending, force, resume, reporter, record, result, parent)
        except BaseException as e:
            if tracker is not None:
                tracker.end("KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED")
            raise
        if tracker is not None:
            tracker.end("FINISHED")
    return result


def _train_chosen_folds(
    exp: Experiment,
    chosen: list[int],
    pending: set[int],
    force: bool,
    resume: bool,
    reporter: ProgressReporter | None,
    record: Callable[[], None],
    result: FoldsResult,
    parent: TrackedRun | None,
) -> None:
    """train_folds' loop: each chosen fold trained (or a finished one left as it is), in order."""
    from flexseg.data.folds import fold_experiment

    for i, k in enumerate(chosen, 1):
        fold_exp = fold_experiment(exp, k)
        staging = fold_exp.resolved_run_dir / runs.STAGING_DIR  # an interrupted replacement of the fold
        state = (read_state(staging) if staging.is_dir() else None) or read_state(fold_exp.resolved_run_dir)
        if state is not None and state.finished and k not in pending:
            # data.root and run_dir are the fold's own; the rest must be what it was trained with
            _check_same_experiment(fold_exp.resolved_run_dir, fold_exp, for_folds=True)
            out.info(f"fold {k} ({i} of {len(chosen)}): finished earlier, left as it is")
            result.left.append(k)
            continue
        out.info(f"fold {k} ({i} of {len(chosen)}) → {fold_exp.resolved_run_dir}")
        again = resume and state is not None and not state.finished
        result.trained[k] = train(
            fold_exp, force=k in pending and not again, resume=again, reporter=reporter, tracking_parent=parent
        )
        pending.discard(k)
        record()
        _release_keras_state()


def _read_folds_record(run_dir: Path) -> dict:
    from flexseg.model.store import FOLDS_FILE

    try:
        data = json.loads((run_dir / FOLDS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _release_keras_state() -> None:
    """Between folds: drop the finished fold's graphs and layers (names and memory start afresh)."""
    import sys

    if "keras" in sys.modules:
        sys.modules["keras"].backend.clear_session()


def _several(exp: Experiment) -> bool:
    """Whether training may span several processes or devices (then the strategy comes first)."""
    mode = exp.train.distribute
    return mode in ("mirrored", "multi_worker") or (mode == "auto" and bool(settings.tf_config_text()))


def _distribution(exp: Experiment) -> Distribution:
    from flexseg.training.distribute import make_distribution

    return make_distribution(exp.train.distribute)


def _holds_run(folder: runs.OutputFolder) -> bool:
    return bool(folder.record.existing()) or any(
        folder.legacy(n) and (folder.folder / n).exists() for n in runs.RUN_LEGACY_NAMES
    )


def _check_run_dir_free(folder: runs.OutputFolder, staged_state: ResumeState | None, force: bool) -> None:
    if force:
        return
    for where, state in ((folder.staging(), staged_state), (folder.folder, read_state(folder.folder))):
        if state is not None and not state.finished:
            raise RunError(
                f"{where} holds an unfinished run (stopped after epoch {state.epoch}); pass --resume to "
                "continue it, or --force to start again"
            )
    if _holds_run(folder):
        shown = ", ".join(folder.record.existing()[:3]) or "model.json"
        raise RunError(
            f"{folder.folder} already holds a run ({shown}); pass --force to replace it (the earlier run "
            "stays until the new one has finished), or choose another run_dir (--set run_dir=DIR)"
        )
