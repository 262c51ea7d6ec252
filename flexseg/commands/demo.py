"""The built-in demo: a synthetic CT-like dataset made on the spot, and the whole pipeline on it."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from flexseg import console as out
from flexseg.data.classes import ClassMap
from flexseg.data.io import write_image, write_palette_mask
from flexseg.data.synthetic import synthetic_slice
from flexseg.errors import ConfigError, RunError
from flexseg.fsutil import atomic_write_text

if TYPE_CHECKING:
    from flexseg.config import Experiment
    from flexseg.training.callbacks import ProgressReporter

MARKER = ".flexseg-demo"  # a folder holding this file was written by the demo and may be rewritten
PATIENTS, SLICES_PER_PATIENT = 20, 10  # split keeps each patient's slices together
MINI_TEST = 8


def write_demo_dataset(root: Path, class_map: ClassMap, size: int = 128, seed: int = 0) -> dict[str, int]:
    """A raw master folder ``root/{images,masks}`` of ``p<patient>_slice<k>.png`` pairs, for
    ``flexseg split``, plus ``root/mini_test/{images,masks}`` whose images have other sizes
    than the model's, to show masks coming back at original size."""
    if root.exists() and any(root.iterdir()) and not (root / MARKER).exists():
        raise RunError(f"{root} exists and was not written by the demo; choose another split.images for the demo")
    if root.exists():
        shutil.rmtree(root)
    rng = np.random.default_rng(seed)
    palette = class_map.palette()
    root.mkdir(parents=True)
    (root / MARKER).write_text("written by `flexseg demo`; safe to delete\n")
    for patient in range(PATIENTS):
        for k in range(SLICES_PER_PATIENT):
            image, labels = synthetic_slice(rng, size, size)
            write_image(root / "images" / f"p{patient:02d}_slice{k:02d}.png", image)
            write_palette_mask(root / "masks" / f"p{patient:02d}_slice{k:02d}.png", labels, palette)
    for i in range(MINI_TEST):
        image, labels = synthetic_slice(rng, size + 32, size + 72)
        write_image(root / "mini_test" / "images" / f"slice_{i:04d}.png", image)
        write_palette_mask(root / "mini_test" / "masks" / f"slice_{i:04d}.png", labels, palette)
    return {"slices": PATIENTS * SLICES_PER_PATIENT, "patients": PATIENTS, "mini_test": MINI_TEST}


def _check_demo_owns(exp: Experiment, raw: Path) -> None:
    """The demo replaces its own dataset and run only: a data.root or run_dir pointed at a real
    split or run is refused before anything is written."""
    import json

    from flexseg.commands.split import MANIFEST
    from flexseg.model.store import CARD_FILE

    root = exp.data.root
    if root.exists() and any(root.iterdir()) and not (root / MARKER).exists():
        try:
            manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
            ours = manifest.get("experiment") == exp.name and Path(manifest.get("images", "")) == exp.split.images
        except (OSError, ValueError):
            ours = False
        if not ours:
            raise RunError(
                f"data.root {root} holds data the demo did not make; the demo replaces only its own. "
                "Choose another data.root for the demo"
            )
    card = exp.resolved_run_dir / CARD_FILE
    if card.exists():
        try:
            trained_for = json.loads(card.read_text(encoding="utf-8")).get("experiment")
        except (OSError, ValueError):
            trained_for = None
        if trained_for != exp.name:
            raise RunError(
                f"run_dir {exp.resolved_run_dir} holds a run of {trained_for!r}, not of the demo; the demo "
                "replaces only its own run. Choose another run_dir for the demo"
            )


@dataclass
class DemoResult:
    trained: object  # TrainResult
    report: object  # EvaluationReport
    inferred: object  # InferResult
    stats: object  # StatsReport
    seconds: float


def run_demo(exp: Experiment, source: Path, reporter: ProgressReporter | None = None) -> DemoResult:
    """The whole pipeline as a user runs it: write a raw dataset into split.images' parent,
    split it by patient, augment the train split, check it (stats), train (replacing the demo's
    own earlier run), evaluate, infer on its mini_test folder."""
    from flexseg.commands.augment import augment
    from flexseg.commands.evaluate import evaluate
    from flexseg.commands.infer import infer, resolve_images, resolve_output
    from flexseg.commands.split import MANIFEST, plan_split, write_split
    from flexseg.commands.stats import report_dataset
    from flexseg.commands.train import train

    t0 = time.perf_counter()
    if exp.split.images is None or exp.data.root is None:
        raise ConfigError(
            f"{source}: the demo needs split.images (its raw dataset goes into that folder's parent) and data.root"
        )
    raw = exp.split.images.parent
    _check_demo_owns(exp, raw)
    counts = write_demo_dataset(raw, ClassMap.from_experiment(exp), size=exp.image.width, seed=exp.train.seed)
    out.info(f"synthetic raw dataset: {counts} → {raw}")
    if (exp.data.root / MARKER).exists() and not (exp.data.root / MANIFEST).exists():
        shutil.rmtree(exp.data.root)  # the layout of an older demo, written by the demo itself
    split = write_split(exp, plan_split(exp, force=True))
    atomic_write_text(split.output / MARKER, "written by `flexseg demo`; the demo may replace this folder\n")
    out.info(f"split by patient: {split.counts} → {split.output}")
    augmented = augment(exp, "train", force=True)
    out.info(f"augmented: {augmented.written} pairs ({augmented.pairs_per_second:.0f} pairs/s)")
    stats, stats_dir = report_dataset(exp)
    if stats.errors:
        raise RunError("the demo dataset has problems: " + "; ".join(p.message for p in stats.errors))
    out.info(f"stats: no leakage, stats.json and figures in {stats_dir}")
    trained = train(exp, force=True, reporter=reporter)
    report = evaluate(exp)
    output = resolve_output(None, trained.run_dir, None, exp)
    inferred = infer(trained.run_dir, resolve_images(None, exp.infer.images), output, force=True)
    return DemoResult(trained, report, inferred, stats, time.perf_counter() - t0)
