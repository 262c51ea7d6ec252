"""Losses on one-hot masks and softmax probabilities."""

from __future__ import annotations

import keras
from keras import ops


def soft_dice_loss(y_true, y_pred, smooth: float = 1.0):
    """1 − mean over classes of the soft Dice, pooled over the batch's pixels."""
    axes = (0, 1, 2)
    intersection = ops.sum(y_true * y_pred, axis=axes)
    denom = ops.sum(y_true, axis=axes) + ops.sum(y_pred, axis=axes)
    return 1.0 - ops.mean((2.0 * intersection + smooth) / (denom + smooth))


def ce_plus_dice_loss(y_true, y_pred):
    return keras.losses.categorical_crossentropy(y_true, y_pred) + soft_dice_loss(y_true, y_pred)


def get_loss(name: str):
    return {
        "categorical_crossentropy": keras.losses.CategoricalCrossentropy(),
        "dice": soft_dice_loss,
        "ce+dice": ce_plus_dice_loss,
    }[name]
