"""flexseg's Python API: the commands as functions, each returning the typed result the CLI draws.

Every function takes an experiment as a path to its YAML file or as an ``Experiment`` already
loaded (``load_experiment``), raises a ``flexseg.errors.FlexsegError`` subclass for bad input
(``ConfigError`` 2, ``DataError`` 3, ``RunError`` 4: their ``exit_code``), and writes only into
the output folder it names, as the command does. The CLI (``flexseg.cli``) parses its arguments
and calls these; nothing a command does is only in the CLI.

To segment images in memory, load a run once with ``Predictor.load(run_dir)`` (also
``from flexseg import Predictor``) and call ``predictor.segment(image)``.

Example::

    from flexseg import api, Predictor

    exp = api.load_experiment("experiments/kneebones3dify-small.yaml", ["train.epochs=2"])
    api.split(exp)
    api.augment(exp)
    trained = api.train(exp)                  # TrainResult: run_dir, best_epoch, ...
    report = api.evaluate(exp)                # EvaluationReport: foreground_dice, per_class, ...
    labels = Predictor.load(trained.run_dir).segment(image_array)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from flexseg.commands.infer import InferOptions
from flexseg.config import PREDICT_BATCH, Experiment, experiment_of
from flexseg.inference import PredictOptions, Predictor

if TYPE_CHECKING:
    from flexseg.commands.augment import AugmentResult
    from flexseg.commands.demo import DemoResult
    from flexseg.commands.export import ExportResult
    from flexseg.commands.import_config import ImportResult
    from flexseg.commands.infer import InferResult
    from flexseg.commands.plan import PlanResult
    from flexseg.commands.split import SplitPlan, SplitResult
    from flexseg.commands.stats import StatsReport
    from flexseg.commands.train import FoldsResult
    from flexseg.evaluation.slices import EvaluationReport
    from flexseg.evaluation.volumes import VolumeReport
    from flexseg.training.callbacks import ProgressReporter
    from flexseg.training.fit import TrainResult

ExperimentLike = Experiment | str | os.PathLike

__all__ = [
    "Experiment",
    "InferOptions",
    "PredictOptions",
    "Predictor",
    "augment",
    "demo",
    "evaluate",
    "export",
    "import_config",
    "infer",
    "load_experiment",
    "plan",
    "report",
    "split",
    "split_plan",
    "stats",
    "train",
    "write_split",
]


def load_experiment(experiment: ExperimentLike, overrides: Sequence[str] = ()) -> Experiment:
    """An experiment, validated.

    Args:
        experiment: the path of a YAML experiment (relative paths in it are taken from its
            folder), or an ``Experiment`` (returned as it is when there are no overrides).
        overrides: ``KEY=VALUE`` strings, as ``--set`` takes them, e.g. ``"train.epochs=1"``.

    Returns:
        The ``Experiment`` (pydantic model; ``Experiment.model_json_schema()`` is its schema).

    Raises:
        ConfigError: no such file, not YAML, or a key or value the schema refuses.
    """
    return experiment_of(experiment, list(overrides))


def plan(
    images: str | os.PathLike,
    masks: str | os.PathLike,
    output: str | os.PathLike,
    *,
    budget: str | float = "1h",
    name: str | None = None,
    force: bool = False,
) -> PlanResult:
    """``flexseg plan``: an experiment planned from a raw folder of images and masks.

    Args:
        images: the raw images (png, jpg, tif, bmp, DICOM slices or NIfTI volumes).
        masks: the raw masks (or label volumes), paired with the images by name.
        output: the experiment YAML to write; ``<stem>.fingerprint.json`` goes beside it.
        budget: time for the whole pipeline on this machine: ``"1h30m"``, or seconds.
        name: the experiment's name (default: the file's stem).
        force: replace an experiment ``flexseg plan`` wrote before.

    Returns:
        PlanResult: the file written, the fingerprint, the budget fit and the choices (``raw``).
    """
    from flexseg.commands.plan import parse_budget
    from flexseg.commands.plan import plan as run

    seconds = parse_budget(budget) if isinstance(budget, str) else float(budget)
    return run(Path(images), Path(masks), Path(output), budget_s=seconds, name=name, force=force)


def split_plan(
    experiment: ExperimentLike,
    *,
    images: str | os.PathLike | None = None,
    masks: str | os.PathLike | None = None,
    output: str | os.PathLike | None = None,
    folds: int | None = None,
    allow_unpaired: bool = False,
    force: bool = False,
) -> SplitPlan:
    """What ``flexseg split`` would write, without writing (``split --dry-run``).

    Args:
        experiment: see ``load_experiment``.
        images: the raw images folder (default ``split.images``).
        masks: the raw masks folder (default ``split.masks``).
        output: where train/valid/test go (default ``data.root``).
        folds: K for a K-fold split (default ``split.folds``).
        allow_unpaired: leave files without a partner out instead of failing.
        force: plan to replace an output folder an earlier split wrote.

    Returns:
        SplitPlan: the pairs, their groups and the split (or fold) of each.
    """
    from flexseg.commands.split import plan_split

    exp = load_experiment(experiment)
    return plan_split(
        exp,
        _path(images),
        _path(masks),
        _path(output),
        folds=folds,
        allow_unpaired=allow_unpaired,
        force=force,
    )


def write_split(experiment: ExperimentLike, plan: SplitPlan) -> SplitResult:
    """Write a ``split_plan``; the output appears in one rename.

    Args:
        experiment: see ``load_experiment``.
        plan: what ``split_plan`` returned.

    Returns:
        SplitResult: the output folder, counts per split, DICOM notes, the mask audit.
    """
    from flexseg.commands.split import write_split as write

    return write(load_experiment(experiment), plan)


def split(experiment: ExperimentLike, **options: object) -> SplitResult:
    """``flexseg split``: ``split_plan`` (same keyword arguments), then ``write_split``.

    Args:
        experiment: see ``load_experiment``.
        **options: ``images``, ``masks``, ``output``, ``folds``, ``allow_unpaired``, ``force``, as
            ``split_plan`` takes them.

    Returns:
        SplitResult: the output folder, counts per split, DICOM notes, the mask audit.
    """
    exp = load_experiment(experiment)
    return write_split(exp, split_plan(exp, **options))


def augment(experiment: ExperimentLike, *, split: str = "train", force: bool = False) -> list[AugmentResult]:
    """``flexseg augment``: ``augment.copies`` copies of each pair of ``split`` (train or valid;
    every fold's of a cross-validation), as ``<stem>__augNN.png`` beside the originals.

    Returns:
        One AugmentResult per split folder augmented: sources, copies written, seconds.
    """
    from flexseg.commands.augment import augment_all

    return augment_all(load_experiment(experiment), split, force=force)


def stats(experiment: ExperimentLike, *, output: str | os.PathLike | None = None) -> StatsReport:
    """``flexseg stats``: describe the split dataset and find its problems; writes stats.json and
    figures into ``output`` (default ``<run_dir>/stats``).

    Returns:
        StatsReport: counts, class fractions, problems (``errors``: what blocks training), and
        ``output``, the folder written. Unlike the command, it does not raise for problems.
    """
    from flexseg.commands.stats import report_dataset

    report, folder = report_dataset(load_experiment(experiment), _path(output))
    report.output = folder
    return report


def train(
    experiment: ExperimentLike,
    *,
    force: bool = False,
    resume: bool = False,
    folds: bool = False,
    fold: int | None = None,
    reporter: ProgressReporter | None = None,
) -> TrainResult | FoldsResult:
    """``flexseg train``: train into the experiment's run folder.

    Args:
        experiment: see ``load_experiment``.
        force: replace an earlier run in the run folder.
        resume: continue an interrupted run from its last save point.
        folds: train every fold of a ``split --folds K`` split (a cross-validation).
        fold: train only this fold (implies ``folds``).
        reporter: receives progress (``flexseg.training.callbacks.ProgressReporter``); None: quiet.

    Returns:
        TrainResult (run_dir, epochs_run, best_epoch, best_val_loss, seconds, images_per_second,
        precision) for one run; FoldsResult (run_dir, each fold's TrainResult, folds left) with folds.

    Raises:
        RunError: the run folder is held by another process, holds another run, or training
            failed (NaN loss); KeyboardInterrupt after a save point on SIGINT/SIGTERM.
    """
    from flexseg.commands.train import train as run
    from flexseg.commands.train import train_folds

    exp = load_experiment(experiment)
    if folds or fold is not None:
        return train_folds(exp, fold=fold, force=force, resume=resume, reporter=reporter)
    return run(exp, force=force, resume=resume, reporter=reporter)


def evaluate(
    experiment: ExperimentLike,
    *,
    pred: str | os.PathLike | None = None,
    truth: str | os.PathLike | None = None,
    output: str | os.PathLike | None = None,
) -> EvaluationReport | VolumeReport:
    """``flexseg evaluate``: score the trained model (or ensemble) on the test split, or the masks
    (label volumes) of ``pred`` against ``truth``.

    Returns:
        EvaluationReport (per image and class: Dice, IoU, precision, recall, HD95; the 3D scores
        and the cross-validation's, when there are any), or VolumeReport for label volumes; its
        ``output`` is the folder the reports were written into.
    """
    from flexseg.commands.evaluate import score

    report, folder = score(load_experiment(experiment), _path(pred), _path(truth), _path(output))
    report.output = folder
    return report


def report(run_dir: str | os.PathLike) -> Path:
    """``flexseg report``: report.html of a run folder, from its files (training curves, scores,
    the worst cases' pictures that ``evaluate`` drew). ``evaluate`` writes it too.

    Args:
        run_dir: the run folder of a trained model or cross-validation.

    Returns:
        The path of report.html (its pictures are in ``report/`` beside it).
    """
    from flexseg.report import write_page

    return write_page(Path(run_dir))


def infer(
    experiment: ExperimentLike | None = None,
    *,
    model: str | os.PathLike | None = None,
    images: Sequence[str | os.PathLike] = (),
    output: str | os.PathLike | None = None,
    options: InferOptions | None = None,
    precision: str | None = None,
    batch_size: int = PREDICT_BATCH,
    force: bool = False,
) -> InferResult:
    """``flexseg infer``: masks (and label volumes) for image files and folders, written into a folder.

    Args:
        experiment: optional; gives the run folder, ``infer.images`` and ``infer.output``.
        model: a run folder (default: the experiment's run, ``$FLEXSEG_MODEL``, the only run in ./runs).
        images: folders or files (default ``infer.images``).
        output: the folder for the masks (see ``flexseg infer --help`` for the default).
        options: ``flexseg.commands.infer.InferOptions`` (tta, tiles, overlay, probabilities,
            volumes, dicom_seg, postprocessing, ...).
        precision: auto, float32, bfloat16, float16 (default ``infer.precision``, else auto).
        batch_size: images per model call.
        force: overwrite masks flexseg wrote there before.

    Returns:
        InferResult: the model and output folders, counts, seconds, the precision used.
    """
    from flexseg.commands.infer import infer_for

    exp = load_experiment(experiment) if experiment is not None else None
    return infer_for(
        exp,
        model=_path(model),
        images=[Path(p) for p in images],
        output=_path(output),
        batch_size=batch_size,
        force=force,
        options=options,
        precision=precision,
    )


def export(
    run_dir: str | os.PathLike,
    format: str,
    *,
    output: str | os.PathLike | None = None,
    tolerance: float = 1e-4,
    force: bool = False,
) -> ExportResult:
    """``flexseg export``: the trained model for another runtime, checked against the Keras model.

    Args:
        run_dir: the run folder of a trained model.
        format: ``savedmodel``, ``tflite`` or ``onnx`` (onnx needs the extra ``flexseg[onnx]``).
        output: the folder for the export (default ``<run>/export/<format>``).
        tolerance: the largest allowed probability difference from the Keras model.
        force: replace an earlier export.

    Returns:
        ExportResult: the exported model's path, the largest difference measured and on how many images.
    """
    from flexseg.commands.export import export as run

    return run(Path(run_dir), format, _path(output), tolerance=tolerance, force=force)


def import_config(
    config: str | os.PathLike, output: str | os.PathLike | None = None, *, force: bool = False
) -> ImportResult:
    """``flexseg import-config``: a TensorFlowFlexUNet train_eval_infer.config as a flexseg experiment.

    Args:
        config: the legacy config (values read as Python literals, never run).
        output: the experiment YAML to write (default ``experiment.yaml`` beside the config).
        force: replace an experiment file flexseg wrote before.

    Returns:
        ImportResult: the file written, its number of classes, and a warning per legacy key not taken.
    """
    from flexseg.commands.import_config import import_config as run

    return run(Path(config), _path(output), force=force)


def demo(
    experiment: ExperimentLike | None = None,
    *,
    output: str | os.PathLike | None = None,
    volumes: bool = False,
    overrides: Sequence[str] = (),
    reporter: ProgressReporter | None = None,
) -> DemoResult:
    """``flexseg demo``: the whole pipeline on a synthetic dataset made on the spot.

    Args:
        experiment: the demo experiment (default: the one shipped with flexseg, ``demo`` or
            ``demo-volumes``, its data and run folders under ``output``).
        output: the folder the shipped demo writes into (default: the current folder).
        volumes: NIfTI volumes instead of PNG slices; unseen volumes are scored in 3D.
        overrides: ``KEY=VALUE`` strings, e.g. ``"train.epochs=1"``.
        reporter: training progress (None: quiet).

    Returns:
        DemoResult: the train, evaluation, inference and stats results, and the seconds it took.
    """
    from flexseg.commands.demo import demo_experiment, run_demo

    exp = demo_experiment(experiment, _path(output), volumes, list(overrides))
    return run_demo(exp, reporter=reporter, volumes=volumes)


def _path(value: str | os.PathLike | None) -> Path | None:
    return None if value is None else Path(value)
