import subprocess
import sys
from unittest import mock

import keras
import numpy as np
import pytest
import tensorflow as tf

import flexseg.model.flexunet as flexunet
from flexseg.model.matmul_conv import MatmulConv2D, prefers_matmul
from flexseg.model.store import save_model
from tests.conftest import REPO


def _pair(kernel, dilation, channels_out, activation="relu"):
    """A Conv2D and a MatmulConv2D with the same weights."""
    options = dict(padding="same", dilation_rate=dilation, activation=activation)
    return keras.layers.Conv2D(channels_out, kernel, **options), MatmulConv2D(channels_out, kernel, **options)


@pytest.mark.parametrize(
    "kernel, dilation, height, width, channels_in, channels_out",
    [
        (3, 1, 4, 4, 8, 6),
        (4, 1, 3, 5, 2, 3),  # an even kernel ("same" puts the extra pixel after) on a rectangle
        (5, 2, 4, 4, 3, 2),  # a dilated kernel wider than the image
        ((3, 1), 1, 6, 2, 4, 5),
        (1, 1, 2, 2, 4, 4),
    ],
)
def test_it_computes_conv2d_and_its_gradients(kernel, dilation, height, width, channels_in, channels_out):
    conv, matmul = _pair(kernel, dilation, channels_out)
    x = tf.constant(np.random.default_rng(0).normal(size=(3, height, width, channels_in)), tf.float32)
    conv.build(x.shape)
    matmul.build(x.shape)
    matmul.set_weights([w + 0.1 for w in conv.get_weights()])  # a bias that is not zero
    conv.set_weights(matmul.get_weights())
    assert [w.shape for w in matmul.weights] == [w.shape for w in conv.weights]

    def value_and_gradients(layer):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * tf.range(1.0, 1.0 + y.shape[-1]))  # each output channel its own weight
        return [y, *tape.gradient(loss, [x, layer.kernel, layer.bias])]

    for got, expected in zip(value_and_gradients(matmul), value_and_gradients(conv)):
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)
        assert np.abs(expected.numpy()).max() > 0  # a gradient that is all zero would compare nothing


def test_it_refuses_what_it_does_not_compute():
    for options in ({"strides": 2}, {"padding": "valid"}, {"data_format": "channels_first"}, {"groups": 2}):
        with pytest.raises(ValueError, match="stride 1"):
            MatmulConv2D(4, 3, **({"padding": "same"} | options))


def test_prefers_matmul_for_the_small_images_only():
    assert prefers_matmul(8, 8) and prefers_matmul(4, 4) and prefers_matmul(2, 32)
    assert not prefers_matmul(16, 16) and not prefers_matmul(8, 9)


def test_the_flexunet_gives_what_it_gives_with_convolutions_everywhere():
    """The deepest levels (8×8, 4×4 here) are MatmulConv2D; with the same weights the model's
    output equals the one built with Conv2D at every level."""
    options = dict(width=32, height=32, channels=3, num_classes=3, base_filters=4, num_layers=4, dilation=(2, 2))
    model = flexunet.build_flexunet(**options)
    with mock.patch.object(flexunet, "prefers_matmul", lambda height, width: False):
        reference = flexunet.build_flexunet(**options)
    deep = [layer for layer in model.layers if isinstance(layer, MatmulConv2D)]
    assert [layer.input.shape[1:3] for layer in deep] == [(8, 8)] * 2 + [(4, 4)] * 2 + [(8, 8)] * 2
    assert not any(isinstance(layer, MatmulConv2D) for layer in reference.layers)
    reference.set_weights([w + 0.01 for w in model.get_weights()])
    model.set_weights(reference.get_weights())
    x = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(model.predict_on_batch(x), reference.predict_on_batch(x), atol=1e-5)


def test_a_saved_model_loads_in_a_process_that_never_built_one(tmp_path):
    """flexseg infer loads model.keras without importing the model builder: the store registers
    the layer itself (Keras safe mode, as always)."""
    model = flexunet.build_flexunet(width=16, height=16, channels=1, num_classes=2, base_filters=2, num_layers=2)
    assert any(isinstance(layer, MatmulConv2D) for layer in model.layers)
    save_model(model, tmp_path)
    x = np.linspace(0, 255, 2 * 16 * 16, dtype=np.float32).reshape(2, 16, 16, 1)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "expected.npy", model.predict_on_batch(x))
    code = (
        "import sys, numpy as np; from pathlib import Path; from flexseg.model.store import load_model;"
        "d = Path(sys.argv[1]); m = load_model(d);"
        "assert 'flexseg.model.flexunet' not in sys.modules;"
        "np.testing.assert_allclose(m.predict_on_batch(np.load(d / 'x.npy')), np.load(d / 'expected.npy'), atol=1e-6);"
        "print('loaded', type(m.layers[2]).__name__)"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "loaded" in done.stdout
