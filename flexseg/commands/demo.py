"""The built-in demo: a synthetic CT-like dataset made on the spot, and the whole pipeline on it."""

from __future__ import annotations

import contextlib
import gzip
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from flexseg import console as out
from flexseg.data.classes import ClassMap
from flexseg.data.io import write_image, write_palette_mask
from flexseg.data.synthetic import synthetic_slice
from flexseg.errors import ConfigError, RunError
from flexseg.fsutil import atomic_write_bytes, atomic_write_text

if TYPE_CHECKING:
    from flexseg.config import Experiment
    from flexseg.training.callbacks import ProgressReporter

MARKER = ".flexseg-demo"  # a folder holding this file was written by the demo and may be rewritten
# held in the raw folder for the whole demo: its steps lock their own folders one after another,
# and a second demo in the same place would replace the first's split under it
DEMO_LOCK = ".flexseg-demo.lock"
PATIENTS, SLICES_PER_PATIENT = 20, 10  # split keeps each patient's slices together
MINI_TEST = 8


def write_demo_dataset(root: Path, class_map: ClassMap, size: int = 128, seed: int = 0) -> dict[str, int]:
    """A raw master folder ``root/{images,masks}`` of ``p<patient>_slice<k>.png`` pairs, for
    ``flexseg split``, plus ``root/mini_test/{images,masks}`` whose images have other sizes
    than the model's, to show masks coming back at original size."""
    rng = np.random.default_rng(seed)
    palette = class_map.palette()
    with _demo_folder(root) as written:
        for folder, name, (image, labels) in [
            *(
                ("", f"p{patient:02d}_slice{k:02d}.png", synthetic_slice(rng, size, size))
                for patient in range(PATIENTS)
                for k in range(SLICES_PER_PATIENT)
            ),
            *(
                ("mini_test/", f"slice_{i:04d}.png", synthetic_slice(rng, size + 32, size + 72))
                for i in range(MINI_TEST)
            ),
        ]:
            write_image(root / f"{folder}images" / name, image)
            write_palette_mask(root / f"{folder}masks" / name, labels, palette)
            written += [f"{folder}images/{name}", f"{folder}masks/{name}"]
    return {"slices": PATIENTS * SLICES_PER_PATIENT, "patients": PATIENTS, "mini_test": MINI_TEST}


@contextlib.contextmanager
def _demo_folder(root: Path) -> Iterator[list[str]]:
    """The demo's raw folder as an output folder: the caller writes its files (over the earlier
    demo's) and lists them; then the files an earlier demo wrote that this one did not are
    removed, by the folder's record. A file the user put there is never touched."""
    from flexseg.runs import open_output

    _check_raw_is_ours(root)
    # a demo folder from before the record: the demo's own folders are taken as its files
    with open_output(root, "demo", legacy_names=(MARKER, "images", "masks", "mini_test", "unseen")) as folder:
        written: list[str] = [MARKER]
        atomic_write_text(root / MARKER, "written by `flexseg demo`; safe to delete\n")
        yield written
        for rel in sorted(set(folder.record.names) - set(written)):
            folder.record.remove(rel)
        folder.record.rewrite(set(written))


def _check_raw_is_ours(root: Path) -> None:
    if root.exists() and any(p.name != DEMO_LOCK for p in root.iterdir()) and not (root / MARKER).exists():
        raise RunError(f"{root} exists and was not written by the demo; choose another split.images for the demo")


VOLUME_SPACING = (0.8, 0.8, 2.5)  # mm: columns, rows, slices, as a CT series
UNSEEN_VOLUMES = 4


def write_demo_volumes(root: Path, size: int = 96, seed: int = 0) -> dict[str, int]:
    """A raw master folder ``root/{images,masks}`` of NIfTI volumes, one per patient (CT-like
    values in HU, label volumes of class indices), stored in turn in RAS, LPS and permuted axis
    order, so the slice convention is at work; plus ``root/unseen/{images,masks}`` to infer and
    score in 3D."""
    import nibabel as nib

    rng = np.random.default_rng(seed)
    base = np.diag([*VOLUME_SPACING, 1.0])
    orders = [  # (axes of the stored array in (column, row, slice) terms, flips, affine change)
        (np.eye(4), lambda v: v),
        (np.array([[-1, 0, 0, size - 1], [0, -1, 0, size - 1], [0, 0, 1, 0], [0, 0, 0, 1.0]]), lambda v: v[::-1, ::-1]),
        (np.array([[0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1.0]]), lambda v: v.transpose(2, 0, 1)),
    ]

    def volume(folder: str, name: str, slices: int, index: int) -> None:
        made = [synthetic_slice(rng, size, size) for _ in range(slices)]
        # display (slice, row, column) → RAS storage (column from the right, row from the front, slice)
        scan = np.stack([image[..., 0] for image, _ in made]).astype(np.int16) * 4 - 1000
        labels = np.stack([lab for _, lab in made]).astype(np.uint8)
        change, store = orders[index % len(orders)]
        for kind, data in (("images", scan), ("masks", labels)):
            ras = data.transpose(2, 1, 0)[::-1, ::-1, :]
            image = nib.Nifti1Image(np.ascontiguousarray(store(ras)), base @ change)
            image.set_qform(image.affine, code=1)
            image.set_sform(image.affine, code=1)
            atomic_write_bytes(root / folder / kind / f"{name}.nii.gz", gzip.compress(image.to_bytes(), mtime=0))
            written.append(f"{folder}{kind}/{name}.nii.gz")

    with _demo_folder(root) as written:
        for patient in range(PATIENTS):
            volume("", f"p{patient:02d}", SLICES_PER_PATIENT, patient)
        for i in range(UNSEEN_VOLUMES):
            volume("unseen/", f"unseen_{i}", SLICES_PER_PATIENT, i)
    return {"volumes": PATIENTS, "slices": PATIENTS * SLICES_PER_PATIENT, "unseen volumes": UNSEEN_VOLUMES}


def _check_demo_owns(exp: Experiment, raw: Path) -> None:
    """The demo replaces its own dataset and run only: a data.root or run_dir pointed at a real
    split or run is refused before anything is written."""

    from flexseg.data.manifest import read_manifest
    from flexseg.errors import DataError
    from flexseg.model.store import CARD_FILE, read_card

    root = exp.data.root
    if root.exists() and any(root.iterdir()) and not (root / MARKER).exists():
        try:
            manifest = read_manifest(root)
        except DataError:
            manifest = None
        ours = manifest is not None and manifest.experiment == exp.name and Path(manifest.images) == exp.split.images
        if not ours:
            raise RunError(
                f"data.root {root} holds data the demo did not make; the demo replaces only its own. "
                "Choose another data.root for the demo"
            )
    if (exp.resolved_run_dir / CARD_FILE).exists():
        try:
            trained_for = read_card(exp.resolved_run_dir).experiment
        except RunError:
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
    volumes: object = None  # VolumeReport: the unseen volumes scored in 3D (demo --volumes)


def demo_experiment(
    experiment: str | Path | Experiment | None, output: Path | None, volumes: bool, overrides: list[str]
) -> Experiment:
    """The demo's experiment: ``experiment`` (a path or an Experiment, its own paths saying where
    it writes), else the one shipped with flexseg (``demo``, or ``demo-volumes`` with ``volumes``)
    read as if it were ``<output>/experiments/<name>.yaml``: its data in ``<output>/data`` and its
    run in ``<output>/runs`` (``output`` default: the current folder)."""
    from flexseg.config import experiment_of, parse_experiment
    from flexseg.resources import shipped_experiment

    if experiment is not None:
        if output is not None:
            raise ConfigError("--output is for the shipped demo; your experiment's own paths say where it writes")
        return experiment_of(experiment, overrides)
    shipped = shipped_experiment("demo-volumes" if volumes else "demo")
    base = (output or Path.cwd()).resolve() / "experiments"
    return parse_experiment(shipped.text, f"flexseg's {shipped.name}.yaml", base, overrides)


def run_demo(exp: Experiment, reporter: ProgressReporter | None = None, volumes: bool = False) -> DemoResult:
    """The whole pipeline as a user runs it: write a raw dataset into split.images' parent,
    split it by patient, augment the train split, check it (stats), train (replacing the demo's
    own earlier run), evaluate, infer on its mini_test folder. With ``volumes`` the raw data are
    NIfTI volumes, and unseen volumes get label volumes that are scored in 3D. A second demo
    writing into the same place while this one runs is refused at once, naming this one."""
    t0 = time.perf_counter()
    if exp.split.images is None or exp.data.root is None:
        raise ConfigError(
            f"{exp.name}: the demo needs split.images (its raw dataset goes into that folder's parent) and data.root"
        )
    raw = exp.split.images.parent
    _check_raw_is_ours(raw)  # before the lock file goes into it
    from flexseg.runs import folder_lock

    made_raw = not raw.exists()
    with folder_lock(raw, raw / DEMO_LOCK, command="demo"):  # then another demo's half-made split is no stranger's
        try:
            _check_demo_owns(exp, raw)
        except RunError:
            if made_raw:  # refused before writing anything: the folder the lock made goes too
                (raw / DEMO_LOCK).unlink()
                raw.rmdir()
            raise
        return _run_demo(exp, raw, reporter, volumes, t0)


def _run_demo(exp: Experiment, raw: Path, reporter: ProgressReporter | None, volumes: bool, t0: float) -> DemoResult:
    from flexseg.commands.augment import augment
    from flexseg.commands.evaluate import evaluate
    from flexseg.commands.infer import infer, resolve_images, resolve_output
    from flexseg.commands.split import plan_split, write_split
    from flexseg.commands.stats import report_dataset
    from flexseg.commands.train import train

    if volumes:
        counts = write_demo_volumes(raw, size=exp.image.width, seed=exp.train.seed)
    else:
        counts = write_demo_dataset(raw, ClassMap.from_experiment(exp), size=exp.image.width, seed=exp.train.seed)
    out.info(f"synthetic raw dataset: {counts} → {raw}")
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
    if volumes:
        from flexseg.commands.evaluate import evaluate_volume_folders

        output = trained.run_dir / "unseen_labels"
        inferred = infer(trained.run_dir, resolve_images([raw / "unseen" / "images"], None), output, force=True)
        scored, _ = evaluate_volume_folders(exp, output, raw / "unseen" / "masks", trained.run_dir / "evaluate_3d")
        return DemoResult(trained, report, inferred, stats, time.perf_counter() - t0, scored)
    output = resolve_output(None, trained.run_dir, None, exp)
    inferred = infer(trained.run_dir, resolve_images(None, exp.infer.images), output, force=True)
    return DemoResult(trained, report, inferred, stats, time.perf_counter() - t0)
