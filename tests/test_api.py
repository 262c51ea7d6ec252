"""The Python API: ``Predictor.load(run).segment(...)`` gives exactly the labels ``flexseg infer``
writes for the same inputs (arrays, files, nibabel images, DICOM series), and ``flexseg.api``
runs the commands and returns their typed results."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from flexseg.cli import app
from tests.conftest import REPO, copy_of, tiny_experiment, write_yaml

KNEE_SERIES = REPO.parent / "shared" / "datasets" / "kneebones3dify-raw" / "Data"


def infer_cli(run: Path, images: Path, output: Path, *extra: str) -> None:
    result = CliRunner().invoke(
        app, ["infer", "--model", str(run), "--images", str(images), "--output", str(output), *extra]
    )
    assert result.exit_code == 0, result.output


def mask_indices(path: Path, card: dict) -> np.ndarray:
    """Class indices of a palette mask infer wrote (its palette is the class colours)."""
    from flexseg.data.classes import ClassMap
    from flexseg.data.io import read_mask

    class_map = ClassMap(card["class_names"], [tuple(c) for c in card["class_colors"]])
    return class_map.to_indices(read_mask(path)).indices


@pytest.fixture(scope="module")
def predictor(learned_project):
    from flexseg import Predictor

    return Predictor.load(learned_project / "runs" / "tiny")  # precision auto, as infer


def test_segment_arrays_gives_the_masks_infer_writes(learned_project, predictor, tmp_path):
    """PNG images of other sizes than the model's (RGB, grey 8-bit, grey 16-bit) read as arrays:
    the list is batched as infer batches the folder, each alone as infer does a folder of one."""
    from flexseg.data.synthetic import synthetic_slice

    run = learned_project / "runs" / "tiny"
    card = json.loads((run / "model.json").read_text())
    rng = np.random.default_rng(3)
    folder = tmp_path / "images"
    folder.mkdir()
    arrays = {}
    for name, (h, w), kind in [("a", (80, 100), "rgb"), ("b", (50, 70), "grey"), ("c", (64, 64), "grey16")]:
        image = synthetic_slice(rng, h, w)[0]
        if kind == "grey":
            image = image[..., 0]
        elif kind == "grey16":
            image = image[..., 0].astype(np.uint16) * 257 + rng.integers(0, 200, (h, w)).astype(np.uint16)
        Image.fromarray(image).save(folder / f"{name}.png")
        arrays[name] = np.asarray(Image.open(folder / f"{name}.png"))  # as a user reads a file
    assert arrays["c"].dtype == np.uint16 and arrays["b"].ndim == 2
    infer_cli(run, folder, tmp_path / "masks")
    written = {name: mask_indices(tmp_path / "masks" / f"{name}.png", card) for name in arrays}
    assert sum((m > 0).mean() for m in written.values()) > 0.02  # the model finds bone: labels to compare

    together = predictor.segment([arrays[n] for n in sorted(arrays)])
    for name, labels in zip(sorted(arrays), together):
        assert labels.dtype == np.uint8 and labels.shape == arrays[name].shape[:2]
        np.testing.assert_array_equal(labels, written[name], err_msg=name)

    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(folder / "a.png", alone / "a.png")
    infer_cli(run, alone, tmp_path / "alone-masks")
    labels, probs = predictor.segment(arrays["a"], probabilities=True)
    np.testing.assert_array_equal(labels, mask_indices(tmp_path / "alone-masks" / "a.png", card))
    assert probs.shape == (80, 100, 3) and np.allclose(probs.sum(-1), 1.0, atol=1e-3)
    np.testing.assert_array_equal(predictor.segment(str(alone / "a.png")), labels)  # a path: the file read


def test_segment_a_nibabel_image_gives_the_label_volume_infer_writes(predictor, learned_project, tmp_path):
    from flexseg.data.synthetic import synthetic_slice

    rng = np.random.default_rng(5)
    display = np.stack([synthetic_slice(rng, 60, 72)[0][..., 0] for _ in range(4)]).astype(np.int16) * 4 - 1000
    ras = display.transpose(2, 1, 0)[::-1, ::-1, :]  # (column, row, slice) from the right, front, bottom
    affine = np.diag([0.8, 0.8, 2.5, 1.0])
    image = nib.Nifti1Image(np.ascontiguousarray(ras), affine)
    image.set_qform(affine, code=1)
    (tmp_path / "scans").mkdir()
    nib.save(image, str(tmp_path / "scans" / "scan.nii.gz"))
    infer_cli(learned_project / "runs" / "tiny", tmp_path / "scans", tmp_path / "labels")
    written = nib.load(str(tmp_path / "labels" / "scan.nii.gz"))
    assert (np.asarray(written.dataobj) > 0).mean() > 0.01  # bone found: a real comparison

    for source in (image, nib.load(str(tmp_path / "scans" / "scan.nii.gz")), tmp_path / "scans" / "scan.nii.gz"):
        labels = predictor.segment(source)
        assert isinstance(labels, nib.Nifti1Image) and labels.get_data_dtype() == np.uint8
        np.testing.assert_array_equal(np.asarray(labels.dataobj), np.asarray(written.dataobj))
        np.testing.assert_allclose(labels.affine, written.affine)

    from flexseg.errors import ConfigError, DataError

    with pytest.raises(ConfigError, match="2D images"):
        predictor.segment(image, probabilities=True)
    with pytest.raises(DataError, match="nibabel"):
        predictor.segment(np.zeros((8, 8, 8), np.int16))  # a volume without its affine
    with pytest.raises(DataError, match="no such file"):
        predictor.segment(tmp_path / "missing.png")


@pytest.mark.skipif(not KNEE_SERIES.is_dir(), reason="needs ../shared/datasets")
def test_segment_a_dicom_series_in_memory_as_infer_volumes_does(learned_project, tmp_path_factory):
    """pydicom Datasets in memory, shuffled, and the folder: both are infer --volumes' label volume."""
    import random

    import pydicom

    from flexseg import Predictor

    run = copy_of(learned_project / "runs" / "tiny", tmp_path_factory, "api-knee")
    card = json.loads((run / "model.json").read_text())
    card["volume"] = {"plane": "axial", "window": "header", "percentiles": None}  # as single DICOM files are read
    (run / "model.json").write_text(json.dumps(card))
    infer_cli(run, KNEE_SERIES, run.parent / "vol", "--volumes")
    (written,) = (run.parent / "vol").glob("*.nii.gz")
    expected = np.asarray(nib.load(str(written)).dataobj)

    predictor = Predictor.load(run)
    datasets = [pydicom.dcmread(str(p)) for p in sorted(KNEE_SERIES.glob("*.dcm"))]
    random.Random(0).shuffle(datasets)
    for source in (datasets, KNEE_SERIES):
        labels = predictor.segment(source)
        np.testing.assert_array_equal(np.asarray(labels.dataobj), expected)
    assert (expected > 0).mean() > 0.005


def test_train_stats_evaluate_infer_through_the_api(tiny_data, tmp_path):
    from flexseg import api
    from flexseg.commands.stats import StatsReport
    from flexseg.evaluation.slices import EvaluationReport
    from flexseg.training.fit import TrainResult

    path = write_yaml(
        tmp_path / "experiments" / "tiny.yaml",
        tiny_experiment(data={"root": str(tiny_data)}, run_dir="../runs/tiny"),
    )
    exp = api.load_experiment(path, ["train.epochs=2"])
    assert exp.train.epochs == 2
    exp = api.load_experiment(exp, ["train.epochs=1"])  # an Experiment overridden again
    assert exp.train.epochs == 1

    stats = api.stats(exp)
    assert isinstance(stats, StatsReport) and not stats.errors
    assert stats.output == tmp_path / "runs" / "tiny" / "stats" and (stats.output / "stats.json").is_file()
    assert stats.splits["train"].pairs == 96

    trained = api.train(exp, force=True)
    assert isinstance(trained, TrainResult)
    assert trained.run_dir == tmp_path / "runs" / "tiny" and (trained.run_dir / "model.keras").is_file()
    assert trained.epochs_run == 1 and trained.best_epoch == 1 and trained.images_per_second > 0

    report = api.evaluate(exp)
    assert isinstance(report, EvaluationReport) and report.output == trained.run_dir
    assert len(report.images) == 16 and 0.0 <= report.foreground_dice <= 1.0
    saved = json.loads((trained.run_dir / "evaluation.json").read_text())
    assert saved["foreground"]["dice"] == pytest.approx(report.foreground_dice)

    inferred = api.infer(exp, images=[tiny_data / "mini_test" / "images"], output=tmp_path / "masks")
    assert inferred.images == 4 and sorted(p.name for p in (tmp_path / "masks").glob("*.png")) == [
        f"case {i:03d}.png" for i in range(4)
    ]
