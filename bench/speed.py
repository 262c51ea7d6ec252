"""Steady-state speed of flexseg's own code paths: training steps, `flexseg infer`, `flexseg augment`."""

from __future__ import annotations

import tempfile
import time
import warnings
from pathlib import Path


def training_images_per_second(exp, pairs, *, warmup: int, steps: int) -> dict:
    """Images/s of ``model.fit`` on flexseg's input pipeline and compiled model (optimizer, loss,
    metrics as `flexseg train`), timed from the end of step ``warmup`` (graph tracing and the
    first steps excluded) over ``steps`` more; the epoch callbacks (validation, checkpoints) are
    left out: they run once an epoch, not once a step."""
    import keras

    from flexseg.data.classes import ClassMap
    from flexseg.training.distribute import make_distribution
    from flexseg.training.fit import compiled_model, input_datasets

    class StepTimes(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.ends = []

        def on_train_batch_end(self, batch, logs=None):
            self.ends.append(time.perf_counter())

    keras.utils.clear_session()
    keras.utils.set_random_seed(exp.train.seed)
    dist = make_distribution("none")
    train, _, _ = input_datasets(exp, dist, pairs, pairs[:2], ClassMap.from_experiment(exp))
    model = compiled_model(exp)
    times = StepTimes()
    t0 = time.perf_counter()
    with warnings.catch_warnings():  # fit's shuffle=True default is ignored for tf.data; ours shuffles itself
        warnings.filterwarnings("ignore", message=r"`shuffle=True` was passed")
        model.fit(train.repeat(), epochs=1, steps_per_epoch=warmup + steps, callbacks=[times], verbose=0)
    seconds = times.ends[-1] - times.ends[warmup - 1]
    batch = exp.train.batch_size
    return {
        "images_per_second": batch * steps / seconds,
        "seconds_per_step": seconds / steps,
        "warmup_seconds": times.ends[warmup - 1] - t0,
        "batch": batch,
        "timed_steps": steps,
        "parameters": int(model.count_params()),
    }


def save_untrained_run(exp, run_dir: Path) -> Path:
    """A run folder with the experiment's untrained model (speed does not depend on the weights)."""
    from flexseg.model.store import ModelCard, save_model, write_card
    from flexseg.training.fit import build_in_precision

    run_dir.mkdir(parents=True, exist_ok=True)
    save_model(build_in_precision(exp), run_dir)
    write_card(run_dir, ModelCard.from_experiment(exp))
    return run_dir


def inference_images_per_second(run_dir: Path, images: list[Path], *, warm: int, batch_size: int = 4) -> dict:
    """Images/s of `flexseg infer` (decode, resize, predict, resize back, write palette masks):
    the extra images of a run over all ``images`` against a run over the first ``warm``, divided by
    the extra time, so model loading and graph tracing, paid once a run, cancel out. None when the
    longer run was not slower: too few images (``--quick``) to tell the model's time from noise."""
    from flexseg.commands.infer import infer

    with tempfile.TemporaryDirectory(prefix="flexseg-bench-infer-") as tmp:
        first = infer(run_dir, images[:warm], Path(tmp) / "warm", batch_size=batch_size)
        full = infer(run_dir, images, Path(tmp) / "full", batch_size=batch_size)
    extra, extra_seconds = len(images) - warm, full.seconds - first.seconds
    return {
        "images_per_second": extra / extra_seconds if extra_seconds > 0 else None,
        "images": len(images),
        "whole_run_images_per_second": full.images_per_second,
        "batch": batch_size,
    }


def augmentation_pairs_per_second(experiment: Path, pairs, *, copies: int, workers: int = 2) -> dict:
    """Pairs/s of `flexseg augment` with the experiment's transforms (NBM: the seed's set),
    reading the sources and writing PNGs included, after one warm-up run."""
    from flexseg.commands.augment import augment
    from flexseg.commands.split import plan_split, write_split
    from flexseg.config import load_experiment

    images, masks = pairs[0][0].parent, pairs[0][1].parent
    with tempfile.TemporaryDirectory(prefix="flexseg-bench-augment-") as tmp:
        exp = load_experiment(
            experiment,
            [
                f"split.images={images}",
                f"split.masks={masks}",
                "split.pairing=stem",
                "split.mask_values=null",
                "split.group_pattern=null",
                "split.groups_csv=null",
                "split.ratios={train: 1.0}",
                f"data.root={tmp}/data",
                f"augment.copies={copies}",
            ],
        )
        write_split(exp, plan_split(exp))
        augment(exp, force=True, workers=workers)  # warm-up: imports, first-call set-up
        result = augment(exp, force=True, workers=workers)
    return {"pairs_per_second": result.pairs_per_second, "pairs": result.written, "threads": workers}
