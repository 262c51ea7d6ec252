"""The shipped NBM experiment on the real nbm-mini subset (as train, valid and test) at 128×128."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from flexseg.cli import app
from tests.conftest import NBM_MINI, REPO


def test_nbm_experiment_trains_one_epoch_on_real_ct_and_writes_class_colour_masks(tmp_path):
    sets = [f"data.{split}={NBM_MINI}" for split in ("train", "valid", "test")]
    sets += ["image.width=128", "image.height=128", "train.epochs=1", f"run_dir={tmp_path / 'run'}"]
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
    assert len(report["images"]) == 24 and 0.0 <= report["dice_coef_multiclass"] <= 1.0

    out = tmp_path / "masks"
    inferred = runner.invoke(app, ["infer", exp, "--output", str(out), *args], catch_exceptions=False)
    assert inferred.exit_code == 0, inferred.stderr
    masks = sorted(out.iterdir())
    assert [m.name for m in masks] == sorted(p.name for p in (NBM_MINI / "images").iterdir())
    for mask in masks:
        with Image.open(mask) as im:
            assert im.size == (512, 512)  # back at the CT slice's own size
            colours = {c for _, c in im.convert("RGB").getcolors(maxcolors=1 << 16)}
        assert colours <= {(0, 0, 0), (255, 255, 255)}
        assert np.asarray(Image.open(mask)).max() <= 1
