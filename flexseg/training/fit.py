"""Building and fitting the model: the TensorFlow half of `flexseg train` (commands/train.py
checks the experiment and the run folder first, so a refused run never loads TensorFlow)."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from flexseg import tfenv  # noqa: I001 (TensorFlow's settings before it loads)

tfenv.load_tensorflow()

import keras
import numpy as np
import tensorflow as tf

from flexseg import console as out
from flexseg import interrupts, runs
from flexseg.config import Experiment, dump_experiment
from flexseg.data.audit import header_windows_used
from flexseg.data.classes import ClassMap
from flexseg.data.io import list_images, read_image, read_mask, resize
from flexseg.data.pipeline import OnlineAugmenter, segmentation_dataset
from flexseg.errors import RunError
from flexseg.fsutil import atomic_write_text
from flexseg.model.flexunet import build_from_experiment
from flexseg.model.losses import get_loss
from flexseg.model.metrics import ForegroundDice, dice_coef_multiclass
from flexseg.model.prediction import (
    drops_last_single,
    evaluation_batch_size,
    steps_per_epoch,
)
from flexseg.model.store import CARD_FILE, ModelCard, is_cross_validation, write_card
from flexseg.names import unique_filenames
from flexseg.tfenv import onednn_enabled
from flexseg.tracking import TrackedRun, Tracker
from flexseg.training.callbacks import (
    BestModel,
    EpochChangeInference,
    HistoryFiles,
    StopAtStepBoundary,
    TrackEpochs,
    TrainingProgress,
)
from flexseg.training.distribute import (
    Distribution,
    reduce_metrics_across_workers,
    work_around_keras_symbolic_build,
)
from flexseg.training.optimizer import make_optimizer
from flexseg.training.plateau import ReduceOnPlateau, StopOnPlateau
from flexseg.training.resume import (
    ResumeCheckpoint,
    StopOnNaN,
    read_state,
    restore_model,
)

if TYPE_CHECKING:
    from flexseg.training.callbacks import ProgressReporter
    from flexseg.training.state import ResumeState

ENVIRONMENT_FILE = "environment.json"


@dataclass
class TrainResult:
    run_dir: Path
    epochs_run: int
    best_epoch: int
    best_val_loss: float
    seconds: float
    train_images: int
    images_per_second: float  # steady state: the first epoch (graph tracing) left out when possible
    precision: str = "float32"  # what the model computed in (train.mixed_precision, auto resolved)
    model: keras.Model | None = None  # as after the last epoch (the best epoch's weights are in run_dir)


def _epoch_change_images(exp: Experiment, valid_pairs: list[tuple[Path, Path]], class_map: ClassMap):
    """The images predicted after each epoch: ``infer.images`` (the legacy scripts' mini_test) when that
    folder exists, else the first validation images; with their truth masks where there are
    any (``masks/`` beside ``images/``, by file stem)."""
    n = exp.train.num_infer_images
    folder = exp.infer.images
    if folder is not None and folder.is_dir():
        paths = list_images(folder)[:n]
        mask_dir = folder.parent / "masks"
        masks = {p.stem: p for p in list_images(mask_dir)} if mask_dir.is_dir() else {}
        pairs = [(p, masks.get(p.stem)) for p in paths]
    else:
        pairs = valid_pairs[:n]
    size = (exp.image.width, exp.image.height)
    images = [resize(read_image(p, exp.image.channels), *size) for p, _ in pairs]
    truths = [
        None if m is None else resize(class_map.to_indices(read_mask(m)).indices, *size, nearest=True) for _, m in pairs
    ]
    shape = (0, exp.image.height, exp.image.width, exp.image.channels)
    stack = np.stack(images).astype(np.float32) if images else np.zeros(shape, np.float32)
    names, _ = unique_filenames([(p.stem, "") for p, _ in pairs])  # masks named after inputs: flexseg.names
    return stack, truths, names


# Keras dtype policies: compute in the chosen type, weights in float32 (mixed precision)
PRECISION_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


def training_precision(exp: Experiment) -> str:
    """float32, bfloat16 or float16: train.mixed_precision, with auto decided by this machine
    (flexseg.precision); an explicit choice the hardware only emulates is warned about."""
    from flexseg.precision import resolve

    return resolve(exp.train.mixed_precision, "train.mixed_precision")


def build_in_precision(exp: Experiment, precision: str | None = None) -> keras.Model:
    """The model computing in ``precision`` (default: ``training_precision``). Layers keep the
    policy they were built with, so the global policy is put back at once. Under mixed_float16
    Keras wraps the optimizer in a LossScaleOptimizer at compile time."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(PRECISION_POLICIES[precision or training_precision(exp)])
    try:
        return build_from_experiment(exp)
    finally:
        keras.config.set_dtype_policy(previous)


def compiled_model(exp: Experiment, precision: str | None = None) -> keras.Model:
    """The experiment's model, compiled with its optimizer, loss and metrics, every variable of
    them created (call under the distribution strategy's scope).

    Created here, not in the first training step: a tf.function that creates variables while it
    is traced is traced again, and Keras creates the optimizer's slots and a function metric's
    totals lazily. That doubled the tracing of the train step, the first epoch's fixed cost."""
    model = build_in_precision(exp, precision)
    model.compile(
        optimizer=make_optimizer(exp.train.learning_rate, exp.train.clipvalue),
        loss=get_loss(exp.train.loss),
        # metric objects, not a function Keras would wrap inside the first step: see above
        metrics=[
            keras.metrics.MeanMetricWrapper(dice_coef_multiclass, name="dice_coef_multiclass"),
            ForegroundDice(exp.num_classes),
        ],
        jit_compile=exp.train.jit_compile,
    )
    model.optimizer.build(model.trainable_variables)
    return model


def write_environment(run_dir: Path, exp: Experiment, dist: Distribution, precision: str) -> None:
    """What reproducing the run needs beyond experiment.yaml: versions, command line, machine."""
    import importlib.metadata as md
    import json
    import os
    import platform
    import sys

    def version(name: str) -> str | None:
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            return None

    packages = (
        "flexseg",
        "tensorflow",
        "keras",
        "numpy",
        "albumentations",
        "opencv-python-headless",
        "pydantic",
        "pydicom",
    )
    atomic_write_text(
        run_dir / ENVIRONMENT_FILE,
        json.dumps(
            {
                "command": sys.argv,
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "seed": exp.train.seed,
                "python": sys.version.split()[0],
                "platform": platform.platform(),
                "cpu_count": os.cpu_count(),
                "onednn": onednn_enabled(),
                "precision": precision,
                "distribute": {
                    "strategy": dist.kind,
                    "workers": dist.workers,
                    "replicas": dist.replicas,
                    "global_batch": dist.global_batch(exp.train.batch_size),
                },
                "packages": {name: version(name) for name in packages},
            },
            indent=1,
        ),
    )


def input_datasets(
    exp: Experiment,
    dist: Distribution,
    train_pairs: list[tuple[Path, Path]],
    valid_pairs: list[tuple[Path, Path]],
    class_map: ClassMap,
) -> tuple[tf.data.Dataset, tf.data.Dataset, int]:
    """(train, valid, steps per epoch). The global batch is train.batch_size per replica.

    Under multi_worker each worker reads its own shard of the (shuffled) training files, padded
    to whole global batches so every worker runs the same number of full steps; every worker
    validates on all of the validation set (identical copies leave the pooled metrics exact).
    """
    size = dict(width=exp.image.width, height=exp.image.height, channels=exp.image.channels, class_map=class_map)
    per_replica = exp.train.batch_size
    global_batch = dist.global_batch(per_replica)
    augment = OnlineAugmenter(exp.augment.transforms) if exp.augment.online else None
    seed = exp.train.seed
    steps = steps_per_epoch(len(train_pairs), global_batch)
    if len(valid_pairs) == 1:  # never a batch of one (flexseg.model.prediction); the mean of two copies is exact
        valid_pairs = valid_pairs * 2
    if dist.kind != "multi_worker":
        return (
            segmentation_dataset(
                train_pairs,
                batch_size=global_batch,
                shuffle=True,
                seed=seed,
                augment=augment,
                drop_single=drops_last_single(len(train_pairs), global_batch),
                **size,
            ),
            segmentation_dataset(valid_pairs, batch_size=evaluation_batch_size(len(valid_pairs), global_batch), **size),
            steps,
        )
    padded = (train_pairs * -(-steps * global_batch // len(train_pairs)))[: steps * global_batch]

    def train_shard(ctx: tf.distribute.InputContext):
        return segmentation_dataset(
            padded,
            batch_size=ctx.get_per_replica_batch_size(global_batch),
            shuffle=True,
            seed=seed,
            augment=augment,
            shard=(ctx.num_input_pipelines, ctx.input_pipeline_id),
            **size,
        )

    def valid_all(ctx: tf.distribute.InputContext):
        return segmentation_dataset(
            valid_pairs, batch_size=evaluation_batch_size(len(valid_pairs), per_replica), **size
        )

    return (
        dist.strategy.distribute_datasets_from_function(train_shard),
        dist.strategy.distribute_datasets_from_function(valid_all),
        steps,
    )


@dataclass
class _Callbacks:
    """The Keras callbacks of one training, in the order they run, and the ones fit's steps ask
    about afterwards."""

    best: BestModel
    progress: TrainingProgress
    history_files: HistoryFiles
    nan_guard: StopOnNaN
    checkpoint: ResumeCheckpoint
    ordered: list[keras.callbacks.Callback]


def fit(
    exp: Experiment,
    dist: Distribution,
    run_dir: Path,
    write_dir: Path,
    state: ResumeState | None,
    class_map: ClassMap,
    train_pairs: list[tuple[Path, Path]],
    valid_pairs: list[tuple[Path, Path]],
    reporter: ProgressReporter | None = None,
    tracking_parent: TrackedRun | None = None,
) -> TrainResult:
    """Train ``exp``'s model: the TensorFlow half of ``flexseg train``, in six steps.

    Args:
        exp: the experiment (seed, model, training knobs).
        dist: the tf.distribute strategy to train under.
        run_dir: the run folder the user named (for messages and the result).
        write_dir: where this training writes: ``run_dir``, or a staging or scratch folder that
            the caller promotes when training ends well.
        state: the resume state of an interrupted run (``training.resume``), or None.
        class_map: the classes and their mask colours.
        train_pairs, valid_pairs: (image, mask) files of the two splits.
        reporter: shows the progress (a terminal bar); None prints plain lines.
        tracking_parent: the cross-validation's MLflow run, for a fold (``train.track``).

    Returns:
        The TrainResult: epochs run, best epoch and val_loss, speed, precision and the model as
        after the last epoch (the best epoch's weights are in ``write_dir``).

    Raises:
        KeyboardInterrupt: on SIGINT/SIGTERM, after saving what can be resumed.
        RunError: when the loss became NaN, or no epoch gave a finite val_loss.
    """
    keras.utils.set_random_seed(exp.train.seed)
    ds_train, ds_valid, steps = input_datasets(exp, dist, train_pairs, valid_pairs, class_map)
    precision = training_precision(exp)
    model = _build(exp, dist, write_dir, state, precision)
    card = _start_record(exp, dist, write_dir, state, precision)
    card.training["parameters"] = int(model.count_params())
    callbacks = _callbacks(exp, dist, write_dir, state, card, class_map, valid_pairs, steps, len(train_pairs), reporter)
    # the chief alone tracks, as it alone writes the run folder
    tracker = (
        Tracker.start(exp, run_dir, write_dir, parent=tracking_parent, resume=state is not None)
        if dist.is_chief
        else None
    )
    if tracker is not None:
        callbacks.ordered.insert(-1, TrackEpochs(tracker, callbacks.history_files))  # progress stays last
    initial_epoch = state.epoch if state else 0
    _announce(exp, dist, run_dir, model, precision, len(train_pairs), len(valid_pairs), initial_epoch)
    t0 = time.perf_counter()
    try:
        history = _run(model, exp, ds_train, ds_valid, initial_epoch, callbacks, run_dir, write_dir)
        epochs_run = _finish(exp, write_dir, card, callbacks, initial_epoch + len(history.history.get("loss", [])))
    except BaseException as e:
        if tracker is not None:
            tracker.end("KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED")
        raise
    seconds = time.perf_counter() - t0
    if tracker is not None:
        tracker.artifact(write_dir / CARD_FILE)
        tracker.end("FINISHED")
    steady = callbacks.progress.seconds[1:] or callbacks.progress.seconds
    return TrainResult(
        run_dir=run_dir,
        epochs_run=epochs_run,
        best_epoch=callbacks.best.best_epoch,
        best_val_loss=callbacks.best.best,
        seconds=seconds,
        train_images=len(train_pairs),
        images_per_second=len(train_pairs) * len(steady) / sum(steady),
        precision=precision,
        model=model,
    )


def _build(
    exp: Experiment, dist: Distribution, write_dir: Path, state: ResumeState | None, precision: str
) -> keras.Model:
    """Step 1: the compiled model under the strategy, with the weights and optimizer state of
    ``state`` restored when resuming."""
    with dist.strategy.scope():
        model = compiled_model(exp, precision)
        if state is not None:
            restore_model(model, write_dir, state)
    if dist.kind != "none":
        work_around_keras_symbolic_build(model, dist.strategy)
    if dist.kind == "multi_worker":
        reduce_metrics_across_workers(model)
    return model


def _start_record(
    exp: Experiment, dist: Distribution, write_dir: Path, state: ResumeState | None, precision: str
) -> ModelCard:
    """Step 2: environment.json and experiment.yaml into ``write_dir``; the model card that the
    best epoch's save writes (with the best epoch so far when resuming)."""
    write_environment(write_dir, exp, dist, precision)
    atomic_write_text(write_dir / "experiment.yaml", dump_experiment(exp))
    card = ModelCard.from_experiment(exp)
    if card.volume is not None:
        card.volume.update(header_windows_used(exp))  # so a NIfTI of the same series maps as the slices
    card.training["precision"] = precision
    if state is not None and state.best.best_epoch:
        card.training.update(best_epoch=state.best.best_epoch, best_val_loss=state.best.best)
    return card


def _callbacks(
    exp: Experiment,
    dist: Distribution,
    write_dir: Path,
    state: ResumeState | None,
    card: ModelCard,
    class_map: ClassMap,
    valid_pairs: list[tuple[Path, Path]],
    steps: int,
    train_images: int,
    reporter: ProgressReporter | None,
) -> _Callbacks:
    """Step 3: the callbacks, in an order that matters: the checkpoint after those whose state it
    saves, the progress last so that an epoch's time includes the others."""

    def record_best(epoch: int, val_loss: float) -> None:
        card.training.update(best_epoch=epoch, best_val_loss=val_loss)
        write_card(write_dir, card)

    infer_images, infer_truths, infer_names = _epoch_change_images(exp, valid_pairs, class_map)
    best = BestModel(write_dir, on_save=record_best)
    progress = TrainingProgress(
        exp.train.epochs, steps, dist.global_batch(exp.train.batch_size), train_images, reporter
    )
    reducer = ReduceOnPlateau(factor=exp.train.reducer_factor, patience=exp.train.reducer_patience)
    stopper = StopOnPlateau(patience=exp.train.patience)
    history_files = HistoryFiles(write_dir)
    nan_guard = StopOnNaN()
    checkpoint = ResumeCheckpoint(write_dir, best, reducer, stopper, history_files, state)
    ordered = [
        StopAtStepBoundary(),
        nan_guard,
        best,
        reducer,
        stopper,
        EpochChangeInference(infer_images, infer_truths, infer_names, write_dir / "epoch_change_infer", class_map),
        history_files,
        checkpoint,  # after the callbacks whose state it saves and restores
        progress,  # last, so an epoch's time includes the checkpoint and the other callbacks
    ]
    if exp.train.tensorboard:
        ordered.insert(-1, keras.callbacks.TensorBoard(log_dir=str(write_dir / "tensorboard")))
    return _Callbacks(best, progress, history_files, nan_guard, checkpoint, ordered)


def _announce(
    exp: Experiment,
    dist: Distribution,
    run_dir: Path,
    model: keras.Model,
    precision: str,
    train_images: int,
    valid_images: int,
    initial_epoch: int,
) -> None:
    """Step 4: one line saying what trains, on what, where."""
    online = f", online augmentation ({len(exp.augment.transforms)} transforms)" if exp.augment.online else ""
    out.info(
        f"training {exp.name}: {train_images} train / {valid_images} valid images, "
        f"{exp.image.width}×{exp.image.height}×{exp.image.channels}, {exp.num_classes} classes, "
        f"{model.count_params():,} parameters, {precision}, {dist.describe()}{online} → "
        + (str(run_dir) if dist.is_chief else "the chief's run folder (this worker writes nothing)")
        + (f", resuming after epoch {initial_epoch}" if initial_epoch else "")
    )


def _run(
    model: keras.Model,
    exp: Experiment,
    ds_train: tf.data.Dataset,
    ds_valid: tf.data.Dataset,
    initial_epoch: int,
    callbacks: _Callbacks,
    run_dir: Path,
    write_dir: Path,
) -> keras.callbacks.History:
    """Step 5: Keras' fit, with a signal stopping it after the step in progress; on one, the best
    model and the plots are kept and the message says how to resume."""
    with warnings.catch_warnings():
        # Keras warns that fit's default shuffle=True is ignored for a tf.data input; ours shuffles itself
        warnings.filterwarnings("ignore", message=r"`shuffle=True` was passed")
        try:
            with interrupts.deferred():  # a signal stops training after the step in progress
                return model.fit(
                    ds_train,
                    validation_data=ds_valid,
                    epochs=exp.train.epochs,
                    initial_epoch=initial_epoch,
                    callbacks=callbacks.ordered,
                    verbose=0,
                )
        except KeyboardInterrupt as e:
            best = callbacks.best
            callbacks.checkpoint.keep_best()
            callbacks.history_files.plot()  # the plots of the epochs that finished
            saved = read_state(write_dir)
            in_folds = is_cross_validation(run_dir.parent)  # a fold of train --folds
            what = (
                f"the last save point is after epoch {saved.epoch}"
                + (f", the best model (epoch {best.best_epoch}) is written" if best.best_epoch else "")
                + f". Continue with: flexseg train EXPERIMENT {'--folds ' if in_folds else ''}--resume"
                if saved
                else "no epoch had finished, nothing to resume"
            )
            kept = "; the earlier run is untouched" if write_dir != run_dir else ""
            out.warn(f"{getattr(e, 'signal_name', 'SIGINT')}: training stopped; {what}{kept}")
            raise


def _finish(exp: Experiment, write_dir: Path, card: ModelCard, callbacks: _Callbacks, epochs_run: int) -> int:
    """Step 6: a NaN loss is an error (the best model and the state kept); else the best model
    and the finished mark are written, and the card with the epochs run. Returns the epochs run."""
    best = callbacks.best
    if callbacks.nan_guard.nan_epoch is not None:
        callbacks.checkpoint.keep_best()
        saved = read_state(write_dir)
        raise RunError(
            f"the loss became NaN in epoch {callbacks.nan_guard.nan_epoch}; training stopped. Kept: the best model "
            f"(epoch {best.best_epoch}) and the state after epoch {saved.epoch if saved else 0}. "
            "Lower train.learning_rate or set train.clipvalue, then --resume or --force"
        )
    best.save()
    callbacks.checkpoint.mark_finished()
    if exp.train.tensorboard and (write_dir / "tensorboard").is_dir():
        runs.adopt(write_dir, write_dir / "tensorboard")  # written by TensorFlow's own writers
    if best.best_epoch == 0:
        raise RunError("training produced no finite val_loss, so no model was saved; check the data and learning_rate")
    card.training.update(epochs_run=epochs_run)
    write_card(write_dir, card)
    return epochs_run
