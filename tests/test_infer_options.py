"""flexseg infer options: TTA, tiles, post-processing, overlays, probabilities, DICOM and file lists."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from flexseg.cli import app
from flexseg.inference import PredictOptions, Predictor, postprocess
from flexseg.inference.tiles import gaussian_window, window_starts
from tests.conftest import CLASSES, KNEE_RAW, copy_of

runner = CliRunner()
COLOURS = {tuple(c["color"]) for c in CLASSES}


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def model_run(learned_project, tmp_path_factory):
    """This module's copy of the shared small model's run folder."""
    return copy_of(learned_project / "runs" / "tiny", tmp_path_factory, "infer")


def colours(path) -> set:
    with Image.open(path) as im:
        return {tuple(c) for _, c in im.convert("RGB").getcolors(maxcolors=1 << 16)}


def test_tta_overlay_and_probabilities(model_run, tiny_data, tmp_path):
    images = tiny_data / "mini_test" / "images"  # 100×80 JPEGs, another size than the model's 64×64
    out = tmp_path / "out"
    result = invoke(
        "infer", "--model", model_run, "--images", images, "--output", out, "--tta", "--overlay", "--probabilities"
    )
    assert result.exit_code == 0, result.stderr
    for i in range(4):
        name = f"case {i:03d}"
        with Image.open(out / f"{name}.png") as mask:
            assert mask.size == (100, 80) and mask.mode == "P"
        assert colours(out / f"{name}.png") <= COLOURS
        with Image.open(out / "overlay" / f"{name}.png") as im:
            assert im.size == (100, 80) and im.mode == "RGB"
        saved = np.load(out / "probabilities" / f"{name}.npz")
        probs = saved["probabilities"].astype(np.float32)
        assert probs.shape == (80, 100, 3) and np.allclose(probs.sum(-1), 1.0, atol=0.01)
        assert list(saved["class_names"]) == ["background", "bone", "lesion"]
        with Image.open(out / f"{name}.png") as mask:
            assert (np.asarray(mask) == probs.argmax(-1)).mean() > 0.999  # the mask is the arg-max
    # TTA is the mean of four flipped predictions: it differs from a plain prediction but agrees mostly
    plain = tmp_path / "plain"
    assert (
        invoke("infer", "--model", model_run, "--images", images, "--output", plain, "--probabilities").exit_code == 0
    )
    a = np.load(out / "probabilities" / "case 000.npz")["probabilities"].astype(np.float32)
    b = np.load(plain / "probabilities" / "case 000.npz")["probabilities"].astype(np.float32)
    assert not np.allclose(a, b) and (a.argmax(-1) == b.argmax(-1)).mean() > 0.9


def test_tiles_match_the_whole_image_inside_and_show_no_seam(model_run):
    """A 192×192 image (3× the model's 64×64): windows blended with Gaussian weights against the
    same fully convolutional network run on the whole image at once."""
    from flexseg.data.synthetic import synthetic_slice
    from flexseg.model.flexunet import build_flexunet
    from flexseg.model.store import load_model, read_card

    card, model = read_card(model_run), load_model(model_run)
    image, _ = synthetic_slice(np.random.default_rng(3), 192, 192)
    tiled = Predictor([model], card, PredictOptions(tiles=True), batch_size=4).tiled(image)
    whole_net = build_flexunet(
        width=192, height=192, channels=3, num_classes=3, base_filters=8, base_kernels=(3, 3), num_layers=4
    )
    whole_net.set_weights(model.get_weights())
    whole = np.asarray(whole_net.predict_on_batch(image[None].astype(np.float32)))[0]
    inner = (slice(16, -16), slice(16, -16))
    assert tiled.shape == whole.shape == (192, 192, 3)
    assert (tiled[inner].argmax(-1) == whole[inner].argmax(-1)).mean() > 0.97
    assert np.abs(tiled[inner] - whole[inner]).mean() < 0.05
    # no seam: across every window edge the tiled map changes no more than the seamless whole-image map
    edges = sorted({s + 64 for s in window_starts(192, 64, 0.5)} - {192})
    for axis in (0, 1):
        step_tiled = np.abs(np.diff(tiled, axis=axis)).mean(axis=(1 - axis, 2))
        step_whole = np.abs(np.diff(whole, axis=axis)).mean(axis=(1 - axis, 2))
        for edge in edges:
            assert step_tiled[edge - 1] <= 1.5 * step_whole[edge - 1] + 0.01, (axis, edge)


def test_windows_cover_the_image_and_weights_peak_in_the_middle():
    assert window_starts(192, 64, 0.5) == [0, 32, 64, 96, 128]
    assert window_starts(100, 64, 0.5) == [0, 32, 36]  # the last window ends at the edge
    assert window_starts(50, 64, 0.5) == [0]
    w = gaussian_window(64, 64)
    assert w.max() == w[31:33, 31:33].max() and w.min() > 0


def test_postprocessing_keeps_the_largest_component_and_drops_small_ones():
    labels = np.zeros((20, 20), np.uint8)
    labels[1:8, 1:8] = 1  # 49 px
    labels[12:14, 12:14] = 1  # 4 px
    labels[15:19, 1:4] = 2  # 12 px, another class
    labels[0, 19] = 2  # 1 px
    largest = postprocess(labels, 3, largest_component=True)
    assert (largest == 1).sum() == 49 and (largest == 2).sum() == 12
    small = postprocess(labels, 3, min_size=5)
    assert (small == 1).sum() == 49 and (small == 2).sum() == 12 and small[0, 19] == 0
    assert (postprocess(labels, 3) == labels).all()


@pytest.mark.skipif(not KNEE_RAW.is_dir(), reason="needs ../shared/datasets/kneebones3dify-raw")
def test_infer_reads_dicom_and_single_files(model_run, tiny_data, tmp_path):
    dicom = sorted((KNEE_RAW / "Data").glob("*.dcm"))[:2]
    one_png = tiny_data / "test" / "images" / "case 000.png"
    out = tmp_path / "out"
    result = invoke(
        "infer",
        "--model",
        model_run,
        "--images",
        dicom[0],
        "--images",
        dicom[1],
        "--images",
        one_png,
        "--output",
        out,
        "--tiles",
    )
    assert result.exit_code == 0, result.stderr
    names = sorted(p.name for p in out.glob("*.png"))
    assert names == sorted([dicom[0].stem + ".png", dicom[1].stem + ".png", "case 000.png"])
    with Image.open(out / (dicom[0].stem + ".png")) as mask:
        assert mask.size == (512, 512)  # the DICOM's own size, predicted window by window


@pytest.mark.parametrize("fmt", ["savedmodel", "tflite", "onnx"])
def test_export_matches_keras(model_run, tmp_path, fmt):
    import json

    out = tmp_path / fmt
    result = invoke("export", model_run, "--format", fmt, "--output", out)
    assert result.exit_code == 0, result.stderr
    card = json.loads((out / "model.json").read_text())
    assert card["class_names"] == ["background", "bone", "lesion"] and card["width"] == 64
    assert card["export"]["format"] == fmt and card["export"]["max_abs_diff_vs_keras"] <= 1e-4
    assert (out / {"savedmodel": "savedmodel", "tflite": "model.tflite", "onnx": "model.onnx"}[fmt]).exists()
    again = invoke("export", model_run, "--format", fmt, "--output", out)
    assert again.exit_code == 4 and "--force" in again.stderr


def test_export_refuses_above_the_tolerance_and_unknown_formats(model_run, tmp_path):
    too_strict = invoke("export", model_run, "--format", "tflite", "--output", tmp_path / "t", "--tolerance", "0")
    assert too_strict.exit_code == 4 and "differs from the Keras model" in too_strict.stderr
    assert not (tmp_path / "t" / "model.tflite").exists()
    assert invoke("export", model_run, "--format", "pt").exit_code == 2
