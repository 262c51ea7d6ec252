"""Precision chosen by the hardware: the selection logic with the device list faked (no GPU
here), the CPU flags read from a cpuinfo file, and a model cast at load computing in the type
chosen while its head stays float32."""

from __future__ import annotations

import numpy as np
import pytest

from flexseg.precision import Hardware, choose, cpu_flags, detect, slow_choice

AVX2 = frozenset({"sse4_2", "avx", "avx2", "fma"})
BF16_CPU = AVX2 | {"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}


@pytest.mark.parametrize(
    "hardware, expected",
    [
        (Hardware(cpu_flags=AVX2), "float32"),  # AVX2 EPYC: bfloat16 would be emulated, 12× slower
        (Hardware(cpu_flags=BF16_CPU), "bfloat16"),
        (Hardware(cpu_flags=AVX2 | {"amx_bf16"}), "bfloat16"),
        (Hardware(gpus=((8, 6),), cpu_flags=AVX2), "bfloat16"),  # Ampere
        (Hardware(gpus=((7, 5),), cpu_flags=BF16_CPU), "float16"),  # Turing: the GPU decides, not the CPU
        (Hardware(gpus=((6, 1),), cpu_flags=BF16_CPU), "float32"),  # Pascal: no tensor cores
        (Hardware(gpus=((8, 0), (7, 0)), cpu_flags=AVX2), "float16"),  # the weakest GPU decides
        (Hardware(gpus=(None,), cpu_flags=BF16_CPU), "float32"),  # capability unknown: the safe choice
    ],
)
def test_auto_picks_the_fastest_native_type(hardware, expected):
    assert choose("auto", hardware) == expected


def test_an_explicit_choice_is_kept_and_emulation_is_named():
    assert choose("none", Hardware(cpu_flags=BF16_CPU)) == "float32"  # train.mixed_precision: none
    assert choose("bfloat16", Hardware(cpu_flags=AVX2)) == "bfloat16"
    assert "emulated" in slow_choice("bfloat16", Hardware(cpu_flags=AVX2))
    assert slow_choice("bfloat16", Hardware(cpu_flags=BF16_CPU)) is None
    assert "emulated" in slow_choice("float16", Hardware(cpu_flags=BF16_CPU))
    assert slow_choice("float16", Hardware(gpus=((7, 0),))) is None


def test_cpu_flags_come_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16 amx_bf16\nbugs\t\t: spectre\n")
    assert cpu_flags(info) == {"fpu", "avx2", "avx512_bf16", "amx_bf16"}
    assert cpu_flags(tmp_path / "missing") == frozenset()


def test_detect_reads_the_gpus_tensorflow_lists(monkeypatch):
    """GPU readiness without a GPU: TensorFlow's device list faked to one Ampere GPU."""
    import tensorflow as tf

    class FakeDevice:
        name, device_type = "/physical_device:GPU:0", "GPU"

    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [FakeDevice()] if kind == "GPU" else [])
    monkeypatch.setattr(tf.config.experimental, "get_device_details", lambda d: {"compute_capability": (8, 0)})
    hardware = detect()
    assert hardware.gpus == ((8, 0),) and choose("auto", hardware) == "bfloat16"
    monkeypatch.setattr(tf.config.experimental, "get_device_details", lambda d: {"compute_capability": (7, 5)})
    assert choose("auto", detect()) == "float16"


def test_float16_training_gets_a_loss_scale_optimizer(tmp_path):
    import keras

    from flexseg.config import load_experiment
    from flexseg.training.fit import compiled_model
    from tests.conftest import write_yaml

    experiment = {
        "name": "fp16",
        "classes": [{"name": "background", "color": [0, 0, 0]}, {"name": "fg", "color": [255, 255, 255]}],
        "image": {"width": 16, "height": 16, "channels": 1},
        "model": {"base_filters": 2, "num_layers": 2},
    }
    model = compiled_model(load_experiment(write_yaml(tmp_path / "e.yaml", experiment), []), "float16")
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert model.layers[-1].dtype_policy.name == "float32"  # the softmax head
    assert {layer.dtype_policy.name for layer in model.layers[1:-1]} == {"mixed_float16"}


def test_a_model_cast_at_load_computes_in_the_chosen_type():
    from flexseg.model.flexunet import build_flexunet
    from flexseg.model.store import in_precision

    model = build_flexunet(
        width=16, height=16, channels=1, num_classes=3, base_filters=2, num_layers=2, normalization=True
    )
    images = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 1)).astype(np.float32)
    reference = model.predict_on_batch(images)
    cast = in_precision(model, "bfloat16")
    conv = next(layer for layer in cast.layers if layer.name.startswith("conv2d"))
    assert conv.kernel.dtype == "bfloat16"  # cast once, at load
    norm = next(layer for layer in cast.layers if layer.name.startswith("batch_normalization"))
    assert norm.moving_variance.dtype == "float32"  # statistics stay float32
    probs = cast.predict_on_batch(images)
    assert probs.dtype == np.float32 and np.allclose(probs.sum(-1), 1.0, atol=1e-5)  # the float32 head
    assert 0 < np.abs(probs - reference).max() < 0.05  # bfloat16 rounding, not another model
    back = in_precision(cast, "float32")
    assert next(layer for layer in back.layers if layer.name.startswith("conv2d")).kernel.dtype == "float32"


def test_evaluate_computes_as_infer_does_whatever_the_model_was_trained_in(
    learned_project, tmp_path_factory, monkeypatch
):
    """A model trained in bfloat16 on an AMX host and evaluated on an AVX2 one is evaluated in
    float32, not in emulated bfloat16 (12× slower); the two agree, and the report says which."""
    import json

    from flexseg import precision
    from flexseg.commands.evaluate import evaluate
    from flexseg.config import load_experiment
    from tests.conftest import copy_of

    home = copy_of(learned_project, tmp_path_factory, "eval-precision")
    exp = load_experiment(home / "experiments" / "tiny.yaml")
    reports = {}
    for name, flags in (("avx2", AVX2), ("bf16", BF16_CPU)):
        monkeypatch.setattr(precision, "detect", lambda flags=flags: Hardware(cpu_flags=flags))
        reports[name] = evaluate(exp).to_json()
    assert reports["avx2"]["precision"] == "float32" and reports["bf16"]["precision"] == "bfloat16"
    assert abs(reports["avx2"]["foreground_dice"] - reports["bf16"]["foreground_dice"]) < 0.01
    assert json.loads((home / "runs" / "tiny" / "evaluation.json").read_text())["precision"] == "bfloat16"
