"""The shipped NBM experiment on the real nbm-mini subset (as train, valid and test) at 128×128."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from flexseg.cli import app
from tests.conftest import NBM_MINI, REPO


@pytest.mark.slow
def test_nbm_experiment_trains_one_epoch_on_real_ct_and_writes_class_colour_masks(tmp_path):
    """The shipped experiment trains on 6 of the real slices (links to them), then is scored on
    them and infers them at their own size. Its model keeps its 8 levels and 9×9 kernels with 2
    base filters instead of 16 (2 M parameters instead of 125 M): bench/shipped_model.py runs the
    full size, with its time and peak memory, and test_flexunet checks its parameter count."""
    few = tmp_path / "nbm-6"
    for kind in ("images", "masks"):
        (few / kind).mkdir(parents=True)
        for path in sorted((NBM_MINI / kind).iterdir())[:6]:
            (few / kind / path.name).symlink_to(path)
    sets = [f"data.{split}={few}" for split in ("train", "valid", "test")] + [f"infer.images={few / 'images'}"]
    sets += [
        "image.width=128",
        "image.height=128",
        "model.base_filters=2",
        "train.epochs=1",
        f"run_dir={tmp_path / 'run'}",
    ]
    args = [a for s in sets for a in ("--set", s)]
    runner = CliRunner()
    exp = str(REPO / "experiments" / "nbm.yaml")

    trained = runner.invoke(app, ["train", exp, *args], catch_exceptions=False)
    assert trained.exit_code == 0, trained.stderr
    card = json.loads((tmp_path / "run" / "model.json").read_text())
    assert card["training"]["epochs_run"] == 1 and card["class_colors"] == [[0, 0, 0], [255, 255, 255]]

    evaluated = runner.invoke(app, ["evaluate", exp, "--json", *args], catch_exceptions=False)
    assert evaluated.exit_code == 0, evaluated.stderr
    report = json.loads(evaluated.stdout)
    assert len(report["images"]) == 6 and 0.0 <= report["dice_coef_multiclass"] <= 1.0

    out = tmp_path / "masks"
    inferred = runner.invoke(app, ["infer", exp, "--output", str(out), *args], catch_exceptions=False)
    assert inferred.exit_code == 0, inferred.stderr
    masks = sorted(p for p in out.iterdir() if not p.name.startswith(".flexseg"))  # not its bookkeeping files
    assert [m.name for m in masks] == sorted(p.name for p in (few / "images").iterdir())
    for mask in masks:
        with Image.open(mask) as im:
            assert im.size == (512, 512)  # back at the CT slice's own size
            colours = {c for _, c in im.convert("RGB").getcolors(maxcolors=1 << 16)}
        assert colours <= {(0, 0, 0), (255, 255, 255)}
        assert np.asarray(Image.open(mask)).max() <= 1


def test_evaluate_folders_on_nbm_mini(tmp_path):
    """--pred/--truth without a model: the masks against themselves score 1.0; against an
    all-background folder every lesion is missed (Dice 0) and lesion-free slices are both empty."""
    from flexseg.commands.evaluate import evaluate_folders
    from flexseg.config import load_experiment
    from flexseg.data.io import read_mask

    masks = NBM_MINI / "masks"
    exp = load_experiment(REPO / "experiments" / "nbm.yaml", [f"run_dir={tmp_path / 'run'}"])
    same, folder = evaluate_folders(exp, masks, masks)
    assert same.foreground_dice == 1.0 and same.per_class["lesion"]["hd95"] == 0.0
    assert (folder / "per_image.csv").is_file() and folder == tmp_path / "run" / "evaluate" / "masks"

    empty = tmp_path / "empty"
    empty.mkdir()
    with_lesion = 0
    for path in sorted(masks.iterdir()):
        mask = read_mask(path)
        with_lesion += bool((mask.max(-1) > 127).any())
        Image.fromarray(np.zeros(mask.shape[:2], np.uint8)).save(empty / f"{path.stem}.png")
    report, _ = evaluate_folders(exp, empty, masks, tmp_path / "report")
    lesion = report.per_class["lesion"]
    assert lesion["dice"] == 0.0 and lesion["recall"] == 0.0 and lesion["dice_pooled"] == 0.0
    assert report.both_empty["lesion"] == len(report.images) - with_lesion
    assert report.hd95_undefined["lesion"] == with_lesion and lesion["hd95"] is None
