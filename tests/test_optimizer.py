"""flexseg's fused Adam makes the same update as Keras' Adam, alone and under a distribution strategy."""

from __future__ import annotations

import numpy as np
import pytest

from flexseg.tfenv import import_tensorflow_quietly

import_tensorflow_quietly()
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from flexseg.training.optimizer import FusedAdam  # noqa: E402


def _train(optimizer, strategy=None) -> tuple[list[np.ndarray], list[float], list[np.ndarray], list[np.ndarray]]:
    """Three epochs of a two-layer model on fixed random data: weights, losses, optimizer state,
    and the weights before training."""
    keras.utils.set_random_seed(1)
    scope = strategy.scope() if strategy else tf.init_scope()
    with scope:
        model = keras.Sequential(
            [
                keras.Input((8, 8, 3)),
                keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
                keras.layers.Conv2D(2, 1, activation="softmax"),
            ]
        )
        model.compile(optimizer=optimizer(), loss="categorical_crossentropy")
    initial = model.get_weights()
    rng = np.random.default_rng(0)
    x = rng.random((16, 8, 8, 3), dtype=np.float32)
    y = np.eye(2, dtype=np.float32)[rng.integers(0, 2, (16, 8, 8))]
    history = model.fit(x, y, batch_size=4, epochs=3, verbose=0)
    return model.get_weights(), history.history["loss"], [v.numpy() for v in model.optimizer.variables], initial


@pytest.mark.parametrize("clipvalue", [None, 0.05])
def test_the_fused_update_is_keras_adams(clipvalue):
    keras_weights, keras_losses, keras_state, _ = _train(
        lambda: keras.optimizers.Adam(learning_rate=1e-2, clipvalue=clipvalue)
    )
    weights, losses, state, initial = _train(lambda: FusedAdam(learning_rate=1e-2, clipvalue=clipvalue))
    assert losses == pytest.approx(keras_losses, rel=1e-5)
    assert len(state) == len(keras_state)  # iterations, learning rate, a momentum and a velocity a variable
    for ours, theirs in zip(weights + state, keras_weights + keras_state):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6)
    for before, after in zip(initial, weights):  # every variable moved: the comparison is not of untouched weights
        assert np.abs(after - before).max() > 1e-3


def test_under_a_distribution_strategy_the_replicas_update_alike():
    alone = _train(lambda: FusedAdam(learning_rate=1e-2))[0]
    mirrored = _train(lambda: FusedAdam(learning_rate=1e-2), tf.distribute.MirroredStrategy(["/cpu:0"]))[0]
    for a, b in zip(alone, mirrored):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_amsgrad_is_refused_not_ignored():
    with pytest.raises(ValueError, match="amsgrad"):
        FusedAdam(amsgrad=True)
