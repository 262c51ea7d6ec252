"""Keras callbacks: rich progress, best model, history files, epoch-change inference."""

from __future__ import annotations

import csv
import io
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from flexseg import tfenv  # noqa: I001 (TensorFlow's settings before it loads)

tfenv.load_tensorflow()

import keras
import numpy as np

from flexseg import console as out
from flexseg import interrupts
from flexseg.fsutil import atomic_write_text
from flexseg.model.store import inference_view, save_model
from flexseg.plots import plot_history

if TYPE_CHECKING:
    from collections.abc import Callable

    from flexseg.data.classes import ClassMap
    from flexseg.training.callbacks import ProgressReporter

LOSS_KEYS = ["loss", "val_loss"]


class StopAtStepBoundary(keras.callbacks.Callback):
    """Raise a Ctrl-C or SIGTERM that arrived during a step once the step is over (flexseg.interrupts)."""

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        interrupts.raise_if_pending()

    def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None:
        interrupts.raise_if_pending()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        interrupts.raise_if_pending()


class EpochTimer(keras.callbacks.Callback):
    """Wall time of each epoch (training, validation and the callbacks before it)."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.t0 = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.seconds.append(time.perf_counter() - self.t0)


class ProgressReporter(Protocol):
    """What training tells about its progress: ``EpochLines`` (plain lines) or the CLI's live bar."""

    def start(self, epochs: int, steps: int) -> None: ...
    def step(self, epoch: int, done: int, loss: float | None, rate: float) -> None: ...
    def epoch_done(self, epoch: int, epochs: int, logs: dict, rate: float, seconds: float) -> None: ...
    def stop(self) -> None: ...


class EpochLines:
    """The progress a library caller sees: one plain line per finished epoch (quiet-aware). The
    CLI passes a live bar instead (flexseg.views.TrainingBar); both take the same calls."""

    def start(self, epochs: int, steps: int) -> None:
        pass

    def step(self, epoch: int, done: int, loss: float | None, rate: float) -> None:
        pass

    def epoch_done(self, epoch: int, epochs: int, logs: dict, rate: float, seconds: float) -> None:
        if not out.is_quiet():
            out.info(f"epoch {epoch}/{epochs}  {_fmt(logs)}  {rate:.2f} img/s  {seconds:.1f}s")

    def stop(self) -> None:
        pass


class TrainingProgress(EpochTimer):
    """Measures steps and epochs and tells a reporter (``EpochLines`` or the CLI's live bar)."""

    def __init__(
        self, epochs: int, steps: int, batch_size: int, images: int, reporter: ProgressReporter | None = None
    ) -> None:
        super().__init__()
        self.epochs, self.steps, self.batch_size, self.images = epochs, steps, batch_size, images
        self.reporter = reporter or EpochLines()

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.reporter.start(self.epochs, self.steps)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        super().on_epoch_begin(epoch, logs)
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        rate = (batch + 1) * self.batch_size / max(1e-9, time.perf_counter() - self.t0)
        loss = (logs or {}).get("loss")
        self.reporter.step(self.epoch, batch + 1, None if loss is None else float(loss), rate)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        super().on_epoch_end(epoch, logs)
        seconds = self.seconds[-1]
        self.reporter.epoch_done(self.epoch, self.epochs, dict(logs or {}), self.images / max(1e-9, seconds), seconds)

    def on_train_end(self, logs: dict | None = None) -> None:
        self.reporter.stop()


SHORT_NAMES = {"dice_coef_multiclass": "dice_mc", "foreground_dice": "fg_dice", "learning_rate": "lr"}


def short_metric_name(key: str) -> str:
    base = key.removeprefix("val_")
    return ("val_" if key.startswith("val_") else "") + SHORT_NAMES.get(base, base)


def _fmt(logs: dict | None) -> str:
    return " ".join(f"{short_metric_name(k)}={float(v):.4g}" for k, v in (logs or {}).items())


class BestModel(keras.callbacks.Callback):
    """Track the epoch with the lowest val_loss, and write its model (model.keras, weights only,
    atomically) when told: at a save point (flexseg.training.resume) and when training stops.
    Until then the best weights are the model's own; when the next epoch begins they are copied
    to memory (NBM: 0.1 s), so that writing them can wait for the next save point."""

    def __init__(self, run_dir: Path, on_save: Callable[[int, float], None] | None = None) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.best = math.inf
        self.best_epoch = 0
        self.saved_epoch = 0  # the epoch model.keras holds
        self.on_save = on_save
        self.live = False  # the model's weights are the best epoch's
        self.copy: list[np.ndarray] | None = None  # else the best epoch's weights, while unsaved

    def restore(self, best: float, best_epoch: int) -> None:
        """A resumed run: model.keras holds this epoch."""
        self.best, self.best_epoch = best, best_epoch
        self.saved_epoch = best_epoch

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if self.live and self.best_epoch != self.saved_epoch:
            self.copy = self.model.get_weights()
        self.live = False

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = float((logs or {}).get("val_loss", math.nan))
        if value < self.best:
            self.best, self.best_epoch = value, epoch + 1
            self.live, self.copy = True, None

    def save(self) -> None:
        """Write the best epoch's model, unless model.keras holds it already."""
        if self.best_epoch == self.saved_epoch:
            return
        view = inference_view(self.model)
        if self.live:
            save_model(view, self.run_dir)
        else:
            current = self.model.get_weights()
            self.model.set_weights(self.copy)
            try:
                save_model(view, self.run_dir)
            finally:
                self.model.set_weights(current)
        self.saved_epoch, self.copy = self.best_epoch, None
        if self.on_save:
            self.on_save(self.best_epoch, self.best)


class HistoryFiles(keras.callbacks.Callback):
    """train_metrics.csv / train_losses.csv (with each epoch's learning rate and seconds: training,
    validation and the callbacks before this one), rewritten atomically each epoch, and their PNG plots:
    redrawn after an epoch when ``plot_every`` seconds have passed since the last drawing, and always
    at the end of training (a run of short epochs spent a fifth of its time drawing them)."""

    def __init__(self, run_dir: Path, plot_every: float = 30.0) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.rows: list[dict] = []
        self.plot_every = plot_every
        self.plotted_at = time.monotonic()
        self.plotted_rows = 0
        self.t0: float | None = None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.t0 = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
        if self.t0 is not None:
            row["seconds"] = round(time.perf_counter() - self.t0, 3)
        self.rows.append(row)
        self._write("train_losses", ["epoch", *LOSS_KEYS, "learning_rate", "seconds"])
        self._write("train_metrics", ["epoch", *self._metric_keys()])
        if time.monotonic() - self.plotted_at >= self.plot_every:
            self.plot()

    def on_train_end(self, logs: dict | None = None) -> None:
        self.plot()

    def plot(self) -> None:
        """Draw the plots of every epoch so far, unless they already show them."""
        if self.rows and self.plotted_rows != len(self.rows):
            plot_history(self.rows, LOSS_KEYS, "losses", self.run_dir / "train_losses.png")
            plot_history(self.rows, self._metric_keys(), "metrics", self.run_dir / "train_metrics.png")
            self.plotted_at, self.plotted_rows = time.monotonic(), len(self.rows)

    def _metric_keys(self) -> list[str]:
        return [k for k in self.rows[-1] if k not in ("epoch", "learning_rate", "seconds") and k not in LOSS_KEYS]

    def _write(self, name: str, columns: list[str]) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.run_dir / f"{name}.csv", buf.getvalue())


class EpochChangeInference(keras.callbacks.Callback):
    """After an epoch, predict a few images: their masks go to epoch_change_infer/epoch_NNN/
    and one montage (input | truth | prediction per row) to epoch_change_infer/epoch_NNN.png.

    Done after the first epoch, then after an epoch only when it costs at most ``max_share`` of
    the training time since it last ran (with large models and small epochs, 6 predictions an
    epoch were 10% of NBM's training time), and after the last epoch always."""

    def __init__(
        self,
        images: np.ndarray,
        truths: list,
        names: list[str],
        folder: Path,
        class_map: ClassMap,
        max_share: float = 0.05,
    ) -> None:
        super().__init__()
        self.images, self.truths, self.names, self.folder = images, truths, names, folder
        self.class_map, self.max_share = class_map, max_share
        self.cost: float | None = None  # seconds its last run took
        self.last_end = 0.0
        self.skipped: tuple[int, dict | None] | None = None  # the latest epoch not shown

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.cost is not None and (time.perf_counter() - self.last_end) * self.max_share < self.cost:
            self.skipped = (epoch, dict(logs or {}))
            return
        self._show(epoch, logs)

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.skipped is not None:
            self._show(*self.skipped)

    def _show(self, epoch: int, logs: dict | None) -> None:
        started = time.perf_counter()
        self._predict_and_write(epoch, logs)
        self.last_end = time.perf_counter()
        self.cost, self.skipped = self.last_end - started, None

    def _predict_and_write(self, epoch: int, logs: dict | None) -> None:
        from flexseg.data.io import write_image, write_palette_mask
        from flexseg.inference import Predictor
        from flexseg.plots import epoch_montage

        if not len(self.images):
            return
        # the predictor infer runs, calling the model directly: no cross-worker step under tf.distribute
        predictor = Predictor([self.model], card=None, direct=True)
        probs = np.concatenate([predictor.batch(self.images[i : i + 4]) for i in range(0, len(self.images), 4)])
        predictions = probs.argmax(-1).astype(np.uint8)
        target = self.folder / f"epoch_{epoch + 1:03d}"
        target.mkdir(parents=True, exist_ok=True)
        palette = self.class_map.palette()
        for name, pred in zip(self.names, predictions):
            write_palette_mask(target / f"{name}.png", pred, palette)
        title = f"epoch {epoch + 1}  " + "  ".join(
            f"{k}={float(v):.3g}" for k, v in (logs or {}).items() if k in ("loss", "val_loss", "val_foreground_dice")
        )
        write_image(
            self.folder / f"epoch_{epoch + 1:03d}.png",
            epoch_montage(
                list(self.images.astype(np.uint8)),
                self.truths,
                list(predictions),
                self.names,
                self.class_map.colors,
                title,
            ),
        )


class TrackEpochs(keras.callbacks.Callback):
    """Each epoch's row of the history (losses, metrics, learning rate, seconds) to the run's
    tracker (``flexseg.tracking``); after ``HistoryFiles``, whose row it sends."""

    def __init__(self, tracker: object, history: HistoryFiles) -> None:
        super().__init__()
        self.tracker, self.history = tracker, history

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        row = dict(self.history.rows[-1]) if self.history.rows else {}
        step = int(row.pop("epoch", epoch + 1))
        self.tracker.log(row, step=step)
