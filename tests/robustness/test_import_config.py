"""flexseg import-config: seed configs (modelled on the NBM and KneeBones3Dify ones, a 4-class one,
and a malicious one) become validated experiments; nothing in a config is ever executed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flexseg.cli import app
from flexseg.config import load_experiment

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]


def seed_config(
    rgb_map: str, *, kernels="(9,9)", dropout="0.04", lr="0.00007", clip="0.4", factor="0.4", num_classes=2, extra=""
) -> str:
    """A train_eval_infer.config in the seed's layout (the values of the seeds' READMEs)."""
    return f"""; train_eval_infer.config
[model]
model         = "TensorFlowFlexUNet"
generator     =  False
image_width    = 512
image_height   = 512
image_channels = 3
input_normalize = False
normalization  = False
num_classes    = {num_classes}
base_filters   = 16
base_kernels   = {kernels}
num_layers     = 8
dropout_rate   = {dropout}
dilation       = (1,1)
optimizer      = "Adam"
learning_rate  = {lr}
clipvalue      = {clip}
loss           = "categorical_crossentropy"
metrics        = ["dice_coef_multiclass"]
show_summary   = False

[dataset]
class_name    = "ImageCategorizedMaskDataset"

[train]
epochs        = 100
batch_size    = 2
patience      = 10
metrics       = ["dice_coef_multiclass", "val_dice_coef_multiclass"]
model_dir     = "./models"
eval_dir      = "./eval"
images_dir    = "../../../dataset/X/train/images/"
masks_dir     = "../../../dataset/X/train/masks/"
learning_rate_reducer = True
reducer_factor     = {factor}
reduer_patience   = 4
{extra}
[valid]
images_dir = "../../../dataset/X/valid/images/"
masks_dir  = "../../../dataset/X/valid/masks/"

[test]
images_dir = "../../../dataset/X/test/images/"
masks_dir  = "../../../dataset/X/test/masks/"

[infer]
images_dir    = "./mini_test/images/"
output_dir    = "./mini_test_output/"

[mask]
mask_file_format = ".png"
rgb_map = {rgb_map}
"""


def convert(tmp_path: Path, text: str, *args) -> tuple:
    project = tmp_path / "projects" / "TensorFlowFlexUNet" / "X"
    project.mkdir(parents=True, exist_ok=True)
    config = project / "train_eval_infer.config"
    config.write_text(text)
    output = tmp_path / "experiments" / "x.yaml"
    result = runner.invoke(app, ["import-config", str(config), "-o", str(output), *args])
    return result, config, output


def test_nbm_config_becomes_the_shipped_nbm_experiment(tmp_path):
    result, config, output = convert(tmp_path, seed_config("{(0,0,0):0,(255,255,255):1,}"))
    assert result.exit_code == 0, result.output
    exp, nbm = load_experiment(output), load_experiment(REPO / "experiments" / "nbm.yaml")
    assert exp.model == nbm.model
    for key in (
        "learning_rate",
        "clipvalue",
        "loss",
        "batch_size",
        "epochs",
        "patience",
        "reducer_factor",
        "reducer_patience",
    ):
        assert getattr(exp.train, key) == getattr(nbm.train, key), key
    assert [c.color for c in exp.classes] == [c.color for c in nbm.classes]
    assert (exp.image.width, exp.image.height, exp.image.channels) == (512, 512, 3)
    # relative paths point where the seed's did (it ran in the config's folder)
    seed_root = (config.parent / "../../../dataset/X").resolve()
    assert exp.data.train == seed_root / "train" and exp.data.test == seed_root / "test"
    assert exp.infer.images == config.parent / "mini_test" / "images"
    assert "../" in output.read_text()  # kept relative, to the new file
    # the seed's typo is called out and its value used; keys flexseg does not take are listed
    assert "reduer_patience is the legacy scripts' typo" in result.output
    for key in ("learning_rate_reducer", "model_dir", "show_summary", "class_name"):
        assert key in result.output


def test_kneebones_config_keeps_its_bone_colour_and_kernels(tmp_path):
    text = seed_config("{(0,0,0):0,(128,40,40):1,}", kernels="(11,11)", dropout="0.05", clip="0.5", factor="0.5")
    result, _, output = convert(tmp_path, text)
    assert result.exit_code == 0, result.output
    exp, knee = load_experiment(output), load_experiment(REPO / "experiments" / "kneebones3dify.yaml")
    assert exp.model == knee.model
    assert [c.color for c in exp.classes] == [(0, 0, 0), (128, 40, 40)]
    assert (exp.train.clipvalue, exp.train.reducer_factor) == (0.5, 0.5)


def test_four_classes_are_ordered_by_their_index(tmp_path):
    text = seed_config("{(255,0,0):3, (0,0,0):0, (0,255,0):2, (0,0,255):1}", num_classes=4)
    result, _, output = convert(tmp_path, text)
    assert result.exit_code == 0, result.output
    exp = load_experiment(output)
    assert [c.color for c in exp.classes] == [(0, 0, 0), (0, 0, 255), (0, 255, 0), (255, 0, 0)]
    assert [c.name for c in exp.classes] == ["background", "class1", "class2", "class3"]


def test_a_malicious_value_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "pwned"
    text = seed_config(f"__import__('os').system('touch {marker}')")
    result, config, output = convert(tmp_path, text)
    assert result.exit_code == 2
    assert "rgb_map" in result.output and "not a plain Python literal" in result.output
    assert not marker.exists() and not output.exists()


def test_code_in_a_key_flexseg_ignores_is_reported_not_run(tmp_path):
    marker = tmp_path / "pwned"
    text = seed_config("{(0,0,0):0,(255,255,255):1}", extra=f"hook = __import__('os').system('touch {marker}')\n")
    result, _, output = convert(tmp_path, text)
    assert result.exit_code == 0 and "hook" in result.output and "not a plain literal" in result.output
    assert not marker.exists() and output.is_file()


@pytest.mark.parametrize(
    "rgb_map,num_classes,message",
    [
        ("{(0,0,0):0,(255,255,255):1}", 3, "num_classes = 3"),
        ("{(0,0,0):0,(255,255,255):2}", 2, "without gaps"),
        ("{(0,0,0):0,(300,0,0):1}", 2, "0..255"),
        ("[1, 2]", 2, "must be a dict"),
    ],
)
def test_inconsistent_class_maps_are_refused(tmp_path, rgb_map, num_classes, message):
    result, _, output = convert(tmp_path, seed_config(rgb_map, num_classes=num_classes))
    assert result.exit_code == 2 and message in result.output, result.output
    assert not output.exists()


def test_an_existing_experiment_is_not_overwritten(tmp_path):
    result, config, output = convert(tmp_path, seed_config("{(0,0,0):0,(255,255,255):1}"))
    assert result.exit_code == 0
    output.write_text("name: mine\n")
    before = hashlib.sha256(output.read_bytes()).hexdigest()
    again = runner.invoke(app, ["import-config", str(config), "-o", str(output)])
    assert again.exit_code == 4 and "--force" in again.output
    assert hashlib.sha256(output.read_bytes()).hexdigest() == before
    forced = runner.invoke(app, ["import-config", str(config), "-o", str(output), "--force"])
    assert forced.exit_code == 0 and load_experiment(output).name == "X"


def test_a_missing_or_broken_config_is_a_clear_error(tmp_path):
    missing = runner.invoke(app, ["import-config", str(tmp_path / "nope.config")])
    assert missing.exit_code == 2 and "nope.config" in missing.output
    broken = tmp_path / "broken.config"
    broken.write_text("no section header here\nkey = 1\n")
    result = runner.invoke(app, ["import-config", str(broken)])
    assert result.exit_code == 2 and "broken.config" in result.output
