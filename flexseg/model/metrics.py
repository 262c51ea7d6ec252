"""Training metrics: the legacy scripts' score, kept for comparison, and an honest foreground Dice."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flexseg import tfenv  # noqa: I001 (TensorFlow's settings before it loads)

tfenv.load_tensorflow()

import keras
from keras import ops

if TYPE_CHECKING:
    import tensorflow as tf


def dice_coef_multiclass(y_true: tf.Tensor, y_pred: tf.Tensor, smooth: float = 1.0) -> tf.Tensor:
    """The legacy scripts' metric: soft Dice over all classes *including background*, mean over images.

    Background dominates medical masks, so an empty prediction scores ≈0.986 on NBM;
    read ``foreground_dice`` beside it.
    """
    axes = (1, 2, 3)
    intersection = ops.sum(y_true * y_pred, axis=axes)
    union = ops.sum(y_true, axis=axes) + ops.sum(y_pred, axis=axes)
    return ops.mean((2.0 * intersection + smooth) / (union + smooth))


class ForegroundDice(keras.metrics.Metric):
    """Dice of the arg-max prediction per foreground class, pooled over the epoch, then averaged.

    A class absent from both truth and prediction over the whole epoch is left out of
    the mean; if every class is, the score is 1.
    """

    def __init__(self, num_classes: int, name: str = "foreground_dice", **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        self.num_classes = num_classes
        self.tp = self.add_variable(shape=(num_classes,), initializer="zeros", name="tp")
        self.fp = self.add_variable(shape=(num_classes,), initializer="zeros", name="fp")
        self.fn = self.add_variable(shape=(num_classes,), initializer="zeros", name="fn")

    def update_state(self, y_true: tf.Tensor, y_pred: tf.Tensor, sample_weight: tf.Tensor | None = None) -> None:
        true = ops.one_hot(ops.argmax(y_true, axis=-1), self.num_classes)
        pred = ops.one_hot(ops.argmax(y_pred, axis=-1), self.num_classes)
        axes = (0, 1, 2)
        tp = ops.sum(true * pred, axis=axes)
        self.tp.assign_add(tp)
        self.fp.assign_add(ops.sum(pred, axis=axes) - tp)
        self.fn.assign_add(ops.sum(true, axis=axes) - tp)

    def result(self) -> tf.Tensor:
        tp, fp, fn = self.tp[1:], self.fp[1:], self.fn[1:]
        denom = 2.0 * tp + fp + fn
        present = ops.cast(denom > 0, "float32")
        dice = ops.where(denom > 0, 2.0 * tp / ops.maximum(denom, 1.0), 0.0)
        n = ops.sum(present)
        return ops.where(n > 0, ops.sum(dice) / ops.maximum(n, 1.0), 1.0)

    def reset_state(self) -> None:
        for v in (self.tp, self.fp, self.fn):
            v.assign(ops.zeros_like(v))

    def get_config(self) -> dict:
        return {**super().get_config(), "num_classes": self.num_classes}
