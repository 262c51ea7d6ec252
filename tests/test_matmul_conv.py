import subprocess
import sys
import types
from unittest import mock

import keras
import numpy as np
import pytest
import tensorflow as tf

import flexseg.model.matmul_conv as matmul_conv
from flexseg.model.flexunet import build_flexunet
from flexseg.model.matmul_conv import computes_as_matmul, matmul_convolution, prefers_matmul
from flexseg.model.store import in_precision, load_model, save_model


def convolutions_everywhere():
    return mock.patch.object(matmul_conv, "prefers_matmul", lambda height, width: False)


@pytest.mark.parametrize(
    "kernel, dilation, height, width, channels_in, channels_out",
    [
        (3, 1, 4, 4, 8, 6),
        (4, 1, 3, 5, 2, 3),  # an even kernel ("same" puts the odd pixel after) on a rectangle
        (5, 2, 4, 4, 3, 2),  # a dilated kernel wider than the image
        ((3, 1), 1, 6, 2, 4, 5),
        (1, 1, 2, 2, 4, 4),
    ],
)
def test_it_computes_conv2d_and_its_gradients(kernel, dilation, height, width, channels_in, channels_out):
    layer = keras.layers.Conv2D(channels_out, kernel, padding="same", dilation_rate=dilation, activation="relu")
    x = tf.constant(np.random.default_rng(0).normal(size=(3, height, width, channels_in)), tf.float32)
    layer.build(x.shape)
    layer.set_weights([w + 0.1 for w in layer.get_weights()])  # a bias that is not zero

    def value_and_gradients():
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * tf.range(1.0, 1.0 + y.shape[-1]))  # each output channel its own weight
        return [y, *tape.gradient(loss, [x, layer.kernel, layer.bias])]

    expected = value_and_gradients()
    layer.convolution_op = types.MethodType(matmul_convolution, layer)
    got = value_and_gradients()
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-5, atol=1e-5)
        assert np.abs(e.numpy()).max() > 0  # a gradient that is all zero would compare nothing


def test_prefers_matmul_for_the_small_images_only():
    assert prefers_matmul(8, 8) and prefers_matmul(4, 4) and prefers_matmul(2, 32)
    assert not prefers_matmul(16, 16) and not prefers_matmul(8, 9)


def test_the_flexunet_computes_its_deepest_levels_as_products_and_gives_the_same_output():
    """The 8×8 and 4×4 levels' convolutions (encoder and decoder) are products, nothing else;
    with the same weights the output equals the model computed with convolutions everywhere."""
    options = dict(width=32, height=32, channels=3, num_classes=3, base_filters=4, num_layers=4, dilation=(2, 2))
    model = build_flexunet(**options)
    with convolutions_everywhere():
        reference = build_flexunet(**options)
    products = [layer.input.shape[1:3] for layer in model.layers if computes_as_matmul(layer)]
    assert products == [(8, 8)] * 2 + [(4, 4)] * 2 + [(8, 8)] * 2
    assert not any(computes_as_matmul(layer) for layer in reference.layers)
    assert [type(layer) for layer in model.layers] == [type(layer) for layer in reference.layers]
    reference.set_weights([w + 0.01 for w in model.get_weights()])
    model.set_weights(reference.get_weights())
    x = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(model.predict_on_batch(x), reference.predict_on_batch(x), atol=1e-5)
    assert sum(computes_as_matmul(layer) for layer in in_precision(model, "bfloat16").layers) == 6


def test_a_saved_model_is_plain_keras_and_flexseg_loads_it_with_products(tmp_path):
    """model.keras holds Conv2D layers only: Keras alone loads it, in a process that never imports
    flexseg, and predicts what flexseg's loaded model (products at the deepest level) predicts."""
    model = build_flexunet(width=16, height=16, channels=1, num_classes=2, base_filters=2, num_layers=2)
    save_model(model, tmp_path)
    loaded = load_model(tmp_path)
    assert sum(computes_as_matmul(layer) for layer in loaded.layers) == 2
    x = np.linspace(0, 255, 2 * 16 * 16, dtype=np.float32).reshape(2, 16, 16, 1)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "expected.npy", loaded.predict_on_batch(x))
    code = (
        "import sys, numpy as np, keras; from pathlib import Path; d = Path(sys.argv[1]);"
        "m = keras.saving.load_model(d / 'model.keras', safe_mode=True);"
        "assert not [n for n in sys.modules if n.startswith('flexseg')];"
        "np.testing.assert_allclose(m.predict_on_batch(np.load(d / 'x.npy')), np.load(d / 'expected.npy'), atol=1e-5);"
        "print('plain keras', sorted({type(layer).__name__ for layer in m.layers}))"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "'Conv2D'" in done.stdout


def test_on_a_gpu_tensorflow_convolves_as_it_always_did():
    """The threshold was measured against oneDNN's CPU kernels: where TensorFlow sees a GPU, every
    layer stays TensorFlow's convolution."""
    gpu = [tf.config.LogicalDevice("/device:GPU:0", "GPU")]
    with mock.patch.object(tf.config, "list_logical_devices", lambda kind=None: gpu if kind == "GPU" else []):
        model = build_flexunet(width=16, height=16, channels=1, num_classes=2, base_filters=2, num_layers=2)
    assert not any(computes_as_matmul(layer) for layer in model.layers)
