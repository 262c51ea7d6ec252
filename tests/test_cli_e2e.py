"""The real CLI, end to end: train a tiny model, check it learned, evaluate, infer."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from flexseg.cli import app
from tests.conftest import CLASSES, REPO, colours_of, copy_of, tiny_experiment, write_yaml

runner = CliRunner()
COLOURS = {tuple(c["color"]) for c in CLASSES}


def invoke(*args, **kwargs):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False, **kwargs)


@pytest.fixture(scope="module")
def trained(learned_project, tmp_path_factory):
    """This module's copy of the shared small model (trained 15 epochs by the real `flexseg train`);
    returns (experiment path, run dir)."""
    home = copy_of(learned_project, tmp_path_factory, "project")
    return home / "experiments" / "tiny.yaml", home / "runs" / "tiny"


def test_train_writes_the_run_folder(trained):
    _, run = trained
    for name in (
        "model.keras",
        "model.json",
        "experiment.yaml",
        "train_metrics.csv",
        "train_losses.csv",
        "train_metrics.png",
        "train_losses.png",
    ):
        assert (run / name).is_file(), name
    losses = (run / "train_losses.csv").read_text().splitlines()
    assert losses[0] == "epoch,loss,val_loss,learning_rate,seconds" and len(losses) == 16
    metrics_header = (run / "train_metrics.csv").read_text().splitlines()[0].split(",")
    assert {"dice_coef_multiclass", "foreground_dice", "val_foreground_dice"} <= set(metrics_header)
    epoch1 = sorted((run / "epoch_change_infer" / "epoch_001").iterdir())
    assert [p.name for p in epoch1] == ["case 000.png", "case 001.png"]
    card = json.loads((run / "model.json").read_text())
    assert card["class_names"] == ["background", "bone", "lesion"] and card["width"] == 64


def test_evaluate_shows_the_model_learned(trained):
    exp, run = trained
    result = invoke("evaluate", exp, "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["per_class"]["bone"]["dice"] > 0.8  # learned, not guessed: an empty mask scores 0
    assert report["foreground_dice"] > 0.5
    assert report["dice_coef_multiclass"] > 0.9
    assert len(report["images"]) == 16
    rows = (run / "evaluation.csv").read_text().splitlines()
    assert rows[0].startswith("loss,") and rows[1].startswith("dice_coef_multiclass,")
    assert any(r.startswith("dice_bone,") for r in rows) and any(r.startswith("foreground_dice,") for r in rows)
    assert any(r.startswith("hd95_bone,") for r in rows) and any(r.startswith("recall_pooled_lesion,") for r in rows)
    assert report["hd95_unit"] == "pixels" and report["per_class"]["bone"]["hd95"] >= 0
    per_image = (run / "per_image.csv").read_text().splitlines()
    assert len(per_image) == 17 and per_image[0].startswith("image,spacing_mm,loss,dice_coef_multiclass,dice_bone,")
    assert "mean" in result.stderr and "HD95 px" in result.stderr


def test_fail_under_is_a_quality_gate(trained):
    exp, _ = trained
    met = invoke("evaluate", exp, "--fail-under", "dice_bone=0.5", "--fail-under", "recall=0.01")
    assert met.exit_code == 0 and "quality gates met" in met.stderr
    failed = invoke("evaluate", exp, "--fail-under", "dice=0.999")
    assert failed.exit_code == 1 and "dice" in failed.stderr and "is under 0.999" in failed.stderr
    assert invoke("evaluate", exp, "--fail-under", "hd95=2").exit_code == 2


def _check_masks(folder, expected_names, size):
    names = sorted(p.name for p in folder.iterdir() if not p.name.startswith(".flexseg"))  # not the bookkeeping
    assert names == expected_names
    for name in names:
        with Image.open(folder / name) as im:
            assert im.size == size  # the original size, not the model's 64×64
            colours = {tuple(c) for _, c in im.convert("RGB").getcolors(maxcolors=1 << 16)}
        assert colours <= COLOURS


def test_infer_from_the_experiment(trained):
    exp, run = trained
    result = invoke("infer", exp)
    assert result.exit_code == 0, result.stderr
    _check_masks(run / "mini_test_output", [f"case {i:03d}.png" for i in range(4)], (100, 80))
    again = invoke("infer", exp)
    assert again.exit_code == 4 and "--force" in again.stderr
    assert invoke("infer", exp, "--force").exit_code == 0


def test_infer_with_model_and_output(trained, tiny_data, tmp_path):
    _, run = trained
    out = tmp_path / "out"
    result = invoke("infer", "--model", run, "--images", tiny_data / "test" / "images", "--output", out)
    assert result.exit_code == 0, result.stderr
    _check_masks(out, [f"case {i:03d}.png" for i in range(16)], (64, 64))
    # predicted masks agree with the truth for the bone class well above chance
    truth = np.asarray(Image.open(tiny_data / "test" / "masks" / "case 000.png"))
    pred = np.asarray(Image.open(out / "case 000.png"))
    assert ((truth == 1) == (pred == 1)).mean() > 0.95


def test_infer_with_images_only_finds_the_single_run(trained, tiny_data, monkeypatch):
    exp, run = trained
    monkeypatch.chdir(run.parent.parent)  # the project folder holding runs/
    monkeypatch.delenv("FLEXSEG_MODEL", raising=False)
    result = invoke("infer", "--images", tiny_data / "valid" / "images")
    assert result.exit_code == 0, result.stderr
    assert len(list((run / "infer" / "images").glob("*.png"))) == 16

    other = run.parent / "other"
    other.mkdir()
    for name in ("model.keras", "model.json"):
        shutil.copy(run / name, other / name)
    try:
        ambiguous = invoke("infer", "--images", tiny_data / "valid" / "images")
        assert ambiguous.exit_code == 4
        assert "2 trained runs found" in ambiguous.stderr and "runs/other" in ambiguous.stderr
        monkeypatch.setenv("FLEXSEG_MODEL", str(other))
        chosen = invoke("infer", "--images", tiny_data / "mini_test" / "images")
        assert chosen.exit_code == 0, chosen.stderr
        assert (other / "infer" / "images" / "case 000.png").is_file()
    finally:
        shutil.rmtree(other)


def test_training_refuses_to_overwrite_a_run(trained):
    exp, run = trained
    before = (run / "model.keras").stat().st_mtime_ns
    result = invoke("train", exp)
    assert result.exit_code == 4
    assert "already holds a run" in result.stderr and "--force" in result.stderr
    assert (run / "model.keras").stat().st_mtime_ns == before


def test_infer_without_any_trained_model(tmp_path, tiny_data, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FLEXSEG_MODEL", raising=False)
    result = invoke("infer", "--images", tiny_data / "test" / "images")
    assert result.exit_code == 4 and "no trained model found" in result.stderr


def test_installed_command_reports_config_errors_in_one_line(tmp_path):
    bad = write_yaml(tmp_path / "bad.yaml", tiny_experiment(train={"reduer_patience": 2}))
    proc = subprocess.run([sys.executable, "-m", "flexseg.cli", "check", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "did you mean train.reducer_patience?" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    helped = subprocess.run([sys.executable, "-m", "flexseg.cli", "--help"], capture_output=True, text=True)
    assert helped.returncode == 0
    for command in ("check", "split", "augment", "stats", "train", "evaluate", "infer", "export", "demo"):
        assert command in helped.stdout


def test_prepare_real_kneebones_split_augment_stats(tmp_path):
    """What a new user runs on the raw KneeBones3Dify layout, with the experiment as shipped."""
    experiment = REPO / "experiments" / "kneebones3dify.yaml"
    where = ["--set", f"data.root={tmp_path / 'data'}", "--set", f"run_dir={tmp_path / 'run'}"]

    dry = invoke("split", experiment, "--dry-run", *where)
    assert dry.exit_code == 0 and "would write 24 pairs" in dry.stderr and "Mask_013.png" in dry.stderr
    assert not (tmp_path / "data").exists()

    done = invoke("split", experiment, *where)
    assert done.exit_code == 0, done.stderr
    assert "24 DICOM image(s) → 8-bit PNG using the header window" in done.stderr
    again = invoke("split", experiment, *where)
    assert again.exit_code == 3 and "pass --force" in again.stderr

    augmented = invoke("augment", experiment, *where)
    assert augmented.exit_code == 0 and "64 augmented pairs from 16 originals" in augmented.stderr
    for mask in (tmp_path / "data" / "train" / "masks").glob("*__aug*.png"):
        assert colours_of(np.asarray(Image.open(mask).convert("RGB"))) <= {(0, 0, 0), (128, 40, 40)}
    assert invoke("augment", experiment, "--split", "test", *where).exit_code == 2

    stats = invoke("stats", experiment, "--json", *where)
    assert stats.exit_code == 0, stats.stderr
    report = json.loads(stats.stdout)
    assert report["leakage"] is False and report["problems"] == []
    assert {s: v["pairs"] for s, v in report["splits"].items()} == {"train": 80, "valid": 5, "test": 3}
    assert report["splits"]["train"]["augmented"] == 64


def test_a_signal_that_surfaces_inside_another_error_is_still_an_interrupt(capsys):
    """Ctrl-C landing while NumPy runs inside TensorFlow comes out as a SystemError caused by the
    KeyboardInterrupt (seen once in twelve runs of test_two_infers_into_one_output_folder)."""
    import typer

    from flexseg.cli import handles_errors

    @handles_errors
    def interrupted_in_c() -> None:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as cause:
            raise SystemError("<built-in method __array__> returned a result with an exception set") from cause

    with pytest.raises(typer.Exit) as exit_info:
        interrupted_in_c()
    assert exit_info.value.exit_code == 130
    assert "unexpected" not in capsys.readouterr().err
