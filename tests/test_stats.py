import json
import shutil

import numpy as np
from typer.testing import CliRunner

from flexseg.cli import app
from flexseg.commands.stats import collect_stats, write_stats_figures
from tests.conftest import REPO, knee_experiment


def kinds(report):
    return {p.kind for p in report.problems}


def test_real_kneebones_split_is_clean(knee_split, tmp_path):
    report = collect_stats(knee_experiment(knee_split, tmp_path))
    assert not report.errors and not report.leakage
    train = report.splits["train"]
    assert (train.pairs, train.augmented, report.splits["valid"].pairs, report.splits["test"].pairs) == (16, 0, 5, 3)
    assert train.sizes == {"512×512": 16} and train.channels == {"1": 16}
    assert 0.04 < train.class_pixel_fraction["bone"] < 0.12  # the README: bone covers about 5-10% of a slice
    assert train.class_presence["bone"] == 1.0 and train.empty_masks == []
    assert train.intensity["p1"] <= train.intensity["p50"] <= train.intensity["p99"] <= 255
    figures = write_stats_figures(knee_experiment(knee_split, tmp_path), report, tmp_path / "stats")
    assert [f.name for f in figures] == ["split_counts.png", "train_images_sample.png", "train_masks_sample.png"]
    assert all(f.stat().st_size > 10_000 for f in figures)


def test_planted_leaks_are_reported(knee_split, tmp_path):
    test_image = sorted((knee_split / "test" / "images").iterdir())[0]
    valid_image = sorted((knee_split / "valid" / "images").iterdir())[0]
    # a test image copied into train under another name (PNG re-encoded: same pixels, other bytes)
    from flexseg.data.io import read_image, write_image

    write_image(
        knee_split / "train" / "images" / "copy_of_test.png", np.repeat(read_image(test_image, None), 3, axis=-1)
    )
    shutil.copy(knee_split / "test" / "masks" / test_image.name, knee_split / "train" / "masks" / "copy_of_test.png")
    # an "augmented copy" of a valid image sitting in train
    aug = f"{valid_image.stem}__aug01.png"
    shutil.copy(valid_image, knee_split / "train" / "images" / aug)
    shutil.copy(knee_split / "valid" / "masks" / valid_image.name, knee_split / "train" / "masks" / aug)
    report = collect_stats(knee_experiment(knee_split, tmp_path))
    assert report.leakage
    assert {"leak_identical_image", "leak_augmented_copy"} <= kinds(report)
    identical = [p for p in report.problems if p.kind == "leak_identical_image"]
    assert any(
        f"test/images/{test_image.name}" in p.files and "train/images/copy_of_test.png" in p.files for p in identical
    )
    copied = next(p for p in report.problems if p.kind == "leak_augmented_copy")
    assert f"train/images/{aug}" in copied.files and f"valid/images/{valid_image.stem}" in copied.files


def test_unpaired_and_augmented_test_files_are_errors(knee_split, tmp_path):
    image = sorted((knee_split / "test" / "images").iterdir())[0]
    shutil.copy(image, knee_split / "test" / "images" / f"{image.stem}__aug01.png")
    shutil.copy(knee_split / "test" / "masks" / image.name, knee_split / "test" / "masks" / f"{image.stem}__aug01.png")
    (knee_split / "valid" / "masks" / sorted((knee_split / "valid" / "masks").iterdir())[0].name).unlink()
    report = collect_stats(knee_experiment(knee_split, tmp_path))
    assert {"leak_augmented_test", "unpaired"} <= {p.kind for p in report.errors}


def test_cli_stats_json_and_exit_code(knee_split, tmp_path):
    runner = CliRunner()
    args = [
        "stats",
        str(REPO / "experiments" / "kneebones3dify.yaml"),
        "--json",
        "--set",
        f"data.root={knee_split}",
        "--set",
        f"run_dir={tmp_path / 'run'}",
    ]
    ok = runner.invoke(app, args)
    assert ok.exit_code == 0, ok.output
    data = json.loads(ok.stdout)
    assert data["leakage"] is False and data["splits"]["test"]["pairs"] == 3
    assert (tmp_path / "run" / "stats" / "stats.json").is_file()

    test_image = sorted((knee_split / "test" / "images").iterdir())[0]
    shutil.copy(test_image, knee_split / "train" / "images" / "planted.png")
    shutil.copy(knee_split / "test" / "masks" / test_image.name, knee_split / "train" / "masks" / "planted.png")
    leaked = runner.invoke(app, args)
    assert leaked.exit_code == 1
    assert json.loads(leaked.stdout)["leakage"] is True
    assert "the same image is in train and test" in leaked.stderr


def test_stats_before_split_says_what_to_do(tmp_path):
    import pytest

    from flexseg.errors import DataError

    with pytest.raises(DataError, match="no split dataset in .*run flexseg split EXPERIMENT first"):
        collect_stats(knee_experiment(tmp_path / "nothing", tmp_path))


def test_a_cross_validation_dataset_is_checked_fold_by_fold(tmp_path):
    """stats on a data.root of folds: each fold and the test split are the disjoint parts; an
    image in two folds is a leak."""
    from flexseg.commands.split import plan_split, write_split
    from flexseg.config import load_experiment

    root = tmp_path / "data"
    exp = load_experiment(REPO / "experiments" / "kneebones3dify.yaml", [f"data.root={root}", f"run_dir={tmp_path}/r"])
    write_split(exp, plan_split(exp, folds=3))
    report = collect_stats(exp)
    assert list(report.splits) == ["fold_0", "fold_1", "fold_2", "test"] and not report.problems
    assert sum(s.pairs for s in report.splits.values()) == 24
    leaked = sorted((root / "fold_0" / "valid" / "images").iterdir())[0]
    shutil.copy(leaked, root / "fold_1" / "valid" / "images" / "again.png")
    shutil.copy(root / "fold_0" / "valid" / "masks" / leaked.name, root / "fold_1" / "valid" / "masks" / "again.png")
    report = collect_stats(exp)
    assert report.leakage and "fold_0 and fold_1" in next(
        p.message for p in report.problems if p.kind.startswith("leak")
    )
    figures = write_stats_figures(exp, report, tmp_path / "stats")
    assert [f.name for f in figures] == ["split_counts.png", "train_images_sample.png", "train_masks_sample.png"]
