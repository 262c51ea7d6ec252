"""Adam with one fused kernel a variable: the same update as Keras' Adam, in a single pass over
memory instead of a dozen.

Keras' Adam writes the update as a chain of element-wise ops (subtract, multiply, square, add,
square root, divide and three assignments), each a pass over the variable's 4 bytes a parameter.
NBM's 125 M-parameter model makes each pass half a gigabyte: the update was an eighth of a float32
training step's op time and a fifth of a bfloat16 one. TensorFlow's ``ResourceApplyAdam`` kernel
reads the gradient and the three states once and writes them once, with the same formula:

    m ← m + (g − m)(1 − β₁),  v ← v + (g² − v)(1 − β₂),
    θ ← θ − lr·√(1 − β₂ᵗ)/(1 − β₁ᵗ) · m / (√v + ε)

Gradient clipping, the learning rate schedule, the step counter and the variables themselves stay
Keras' own, so checkpoints and resume states are those of ``keras.optimizers.Adam``.
"""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="flexseg")
class FusedAdam(keras.optimizers.Adam):
    """``keras.optimizers.Adam`` (without amsgrad) whose per-variable update is TensorFlow's fused
    ``ResourceApplyAdam``. Takes and saves what Adam does."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.amsgrad:
            raise ValueError("FusedAdam has no amsgrad; use keras.optimizers.Adam")

    def update_step(self, gradient: tf.Tensor, variable: tf.Variable, learning_rate: tf.Tensor) -> None:
        """One variable's update (``variable`` a ``tf.Variable``, the replica's own under a
        distribution strategy, as Keras passes it)."""
        dtype = variable.dtype
        index = self._get_variable_index(variable)
        step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=self._momentums[index].value.handle,
            v=self._velocities[index].value.handle,
            beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
            use_locking=False,
        )


def make_optimizer(learning_rate: float, clipvalue: float | None) -> keras.optimizers.Optimizer:
    """The optimizer flexseg trains with: Adam, fused (see the module's docstring)."""
    return FusedAdam(learning_rate=learning_rate, clipvalue=clipvalue)
