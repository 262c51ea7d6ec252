"""Shared fixtures: tiny synthetic datasets and experiment files written on the spot."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
# the real datasets live beside the repository (as in CI); FLEXSEG_DATASETS points elsewhere
SHARED = Path(os.environ.get("FLEXSEG_DATASETS", REPO.parent / "shared" / "datasets"))
NBM_MINI = SHARED / "nbm-mini"
KNEE_RAW = SHARED / "kneebones3dify-raw"

CLASSES = [
    {"name": "background", "color": [0, 0, 0]},
    {"name": "bone", "color": [255, 255, 255]},
    {"name": "lesion", "color": [255, 0, 0]},
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests first, so that pytest-xdist starts them while the short ones fill the other
    cores; the other tests that need the shared trained model last, so that no worker sits waiting
    for it while another trains it (a slow test that needs it starts the training early)."""

    def order(item: pytest.Item) -> tuple[bool, bool]:
        slow = item.get_closest_marker("slow") is not None
        return (not slow, not slow and "learned_project" in item.fixturenames)

    items.sort(key=order)  # stable: the order is kept otherwise


def write_yaml(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# the robustness suites' project: two classes, 64×64, a 4-filter model trained one epoch
TWO_CLASS_EXPERIMENT = {
    "name": "t",
    "classes": [{"name": "background", "color": [0, 0, 0]}, {"name": "fg", "color": [255, 255, 255]}],
    "image": {"width": 64, "height": 64, "channels": 3},
    "model": {"base_filters": 4, "num_layers": 3},
    "train": {"epochs": 1, "batch_size": 2, "num_infer_images": 0},
    "data": {"root": "data"},
    "split": {"images": "raw/images", "masks": "raw/masks", "ratios": {"train": 0.6, "valid": 0.2, "test": 0.2}},
    "run_dir": "runs/t",
}


def read_record(folder: Path) -> list[str]:
    """The names in a folder's record of what flexseg wrote: one JSON string a line, as
    flexseg.runs writes it (a line that is not one fails here)."""
    import json

    return [json.loads(line) for line in (folder / ".flexseg-written").read_bytes().split(b"\n") if line]


def write_record(folder: Path, names: list[str]) -> None:
    import json

    (folder / ".flexseg-written").write_text("".join(json.dumps(n) + "\n" for n in names))


def set_options(**keys) -> list[str]:
    """``--set key=value`` arguments; a double underscore in a name stands for a dot (split__images)."""
    return [arg for key, value in keys.items() for arg in ("--set", f"{key.replace('__', '.')}={value}")]


def write_raw_pairs(home: Path, count: int, size: int = 64) -> None:
    """``home/raw/{images,masks}``: ``count`` synthetic CT slices s00.png… with 0/255 grey masks."""
    import cv2

    from flexseg.data.synthetic import synthetic_slice

    rng = np.random.default_rng(0)
    for kind in ("images", "masks"):
        (home / "raw" / kind).mkdir(parents=True)
    for i in range(count):
        image, labels = synthetic_slice(rng, size, size)
        cv2.imwrite(str(home / "raw" / "images" / f"s{i:02d}.png"), image)
        cv2.imwrite(str(home / "raw" / "masks" / f"s{i:02d}.png"), ((labels > 0) * 255).astype(np.uint8))


def tiny_experiment(**sections) -> dict:
    """A small, valid experiment; sections given replace or extend the defaults."""
    exp = {
        "name": "tiny",
        "classes": CLASSES,
        "image": {"width": 64, "height": 64, "channels": 3},
        "model": {"base_filters": 8, "base_kernels": [3, 3], "num_layers": 4},
        "train": {"learning_rate": 2e-3, "loss": "ce+dice", "batch_size": 8, "epochs": 1, "num_infer_images": 2},
        "data": {"root": "data"},
    }
    for key, value in sections.items():
        exp[key] = {**exp[key], **value} if isinstance(value, dict) and isinstance(exp.get(key), dict) else value
    return exp


def once_per_run(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """The folder ``name``, built by ``build(folder)`` once per pytest run and shared by all xdist
    workers: the first worker that needs it builds it under a lock, the others wait and reuse it.
    Tests that change what they are given must work on a copy (see ``copy_of``)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the workers' base folders are siblings below one folder of this run
    folder, built = root / name, root / f"{name}.built"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not built.exists():
            shutil.rmtree(folder, ignore_errors=True)  # a build that failed in another worker
            folder.mkdir()
            build(folder)
            built.touch()
    return folder


def copy_of(folder: Path, tmp_path_factory, name: str) -> Path:
    """A private copy of a shared folder."""
    return Path(shutil.copytree(folder, tmp_path_factory.mktemp(name) / folder.name, symlinks=True))


def _write_tiny_data(root: Path) -> None:
    from flexseg.data.classes import ClassMap
    from flexseg.data.io import write_image, write_palette_mask
    from flexseg.data.synthetic import synthetic_slice

    rng = np.random.default_rng(7)
    palette = ClassMap([c["name"] for c in CLASSES], [tuple(c["color"]) for c in CLASSES]).palette()
    for split, n, h, w, suffix in [
        ("train", 96, 64, 64, ".png"),
        ("valid", 16, 64, 64, ".png"),
        ("test", 16, 64, 64, ".png"),
        ("mini_test", 4, 80, 100, ".jpg"),
    ]:
        for i in range(n):
            image, labels = synthetic_slice(rng, h, w)
            write_image(root / split / "images" / f"case {i:03d}{suffix}", image)
            write_palette_mask(root / split / "masks" / f"case {i:03d}.png", labels, palette)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """``data/{train,valid,test,mini_test}/{images,masks}`` of 64×64 synthetic CT slices
    (mini_test at 80×100, as JPEG images, to check sizes and suffixes on the way back). Read-only."""
    return once_per_run(tmp_path_factory, "tiny", lambda folder: _write_tiny_data(folder / "data")) / "data"


@pytest.fixture(scope="session")
def learned_project(tmp_path_factory, tiny_data) -> Path:
    """The one small model that learned, trained once per pytest run for the tests that need *a*
    trained run: ``experiments/tiny.yaml`` (the tiny experiment on ``tiny_data``, 15 epochs) and
    its run ``runs/tiny``. Read-only: take a ``copy_of`` it to write into the run."""

    def train(home: Path) -> None:
        from typer.testing import CliRunner

        from flexseg.cli import app

        exp = write_yaml(
            home / "experiments" / "tiny.yaml",
            tiny_experiment(
                data={"root": str(tiny_data)},
                train={"epochs": 15, "patience": 15},
                infer={"images": str(tiny_data / "mini_test" / "images")},
                run_dir="../runs/tiny",
            ),
        )
        result = CliRunner().invoke(app, ["train", str(exp)], catch_exceptions=False)
        assert result.exit_code == 0, result.stderr

    return once_per_run(tmp_path_factory, "learned", train)


@pytest.fixture(scope="session")
def knee_split_once(tmp_path_factory) -> Path:
    """The real KneeBones3Dify slices split once by the experiment's own split section."""
    from flexseg.commands.split import plan_split, write_split
    from flexseg.config import load_experiment

    root = tmp_path_factory.mktemp("knee") / "data"
    exp = load_experiment(REPO / "experiments" / "kneebones3dify.yaml", [f"data.root={root}"])
    write_split(exp, plan_split(exp))
    return root


@pytest.fixture
def knee_split(knee_split_once, tmp_path) -> Path:
    """A private copy of the split (tests may add or plant files in it)."""
    import shutil

    return Path(shutil.copytree(knee_split_once, tmp_path / "data"))


def knee_experiment(data_root: Path, tmp_path: Path, *overrides: str):
    from flexseg.config import load_experiment

    return load_experiment(
        REPO / "experiments" / "kneebones3dify.yaml",
        [f"data.root={data_root}", f"run_dir={tmp_path / 'run'}", *overrides],
    )


def colours_of(rgb: np.ndarray) -> set[tuple[int, int, int]]:
    """The distinct RGB colours of an image (packed into one integer: np.unique on rows is slow)."""
    packed = np.unique((rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2])
    return {(int(v >> 16), int(v >> 8 & 255), int(v & 255)) for v in packed}
