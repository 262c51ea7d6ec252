"""Losses on one-hot masks and softmax probabilities."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flexseg import tfenv  # noqa: I001 (TensorFlow's settings before it loads)

tfenv.load_tensorflow()

import keras
from keras import ops

if TYPE_CHECKING:
    from collections.abc import Callable

    import tensorflow as tf


def soft_dice_loss(y_true: tf.Tensor, y_pred: tf.Tensor, smooth: float = 1.0) -> tf.Tensor:
    """1 − mean over classes of the soft Dice, pooled over the batch's pixels."""
    axes = (0, 1, 2)
    intersection = ops.sum(y_true * y_pred, axis=axes)
    denom = ops.sum(y_true, axis=axes) + ops.sum(y_pred, axis=axes)
    return 1.0 - ops.mean((2.0 * intersection + smooth) / (denom + smooth))


def ce_plus_dice_loss(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    return keras.losses.categorical_crossentropy(y_true, y_pred) + soft_dice_loss(y_true, y_pred)


def get_loss(name: str) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    return {
        "categorical_crossentropy": keras.losses.CategoricalCrossentropy(),
        "dice": soft_dice_loss,
        "ce+dice": ce_plus_dice_loss,
    }[name]
