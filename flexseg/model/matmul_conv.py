"""A 2D convolution computed as one matrix product: for the FlexUNet's deepest levels, where the
image is a few pixels wide and the layer holds millions of weights.

TensorFlow's CPU convolutions (oneDNN) are fast on wide images with few channels and slow on the
opposite: at NBM's 4×4, 2048-channel level (38 M weights a layer) its float32 convolution runs at
21–31 GFLOP/s forward and in both gradients, where a matrix product of the same size runs at
100–130 (``python bench/conv_kernels.py --layouts``). So a layer whose image is at most
``MATMUL_MAX_PIXELS`` pixels gathers its k×k neighbourhoods into rows ("im2col": a pad, k² slices and
a concatenation, a few megabytes at these sizes) and multiplies them by the kernel seen as a
(k·k·in, out) matrix. The rows are one batch of all the pixels, (1, pixels, k·k·in): a batched
product's gradients are TensorFlow's batched kernels, 2–3× faster here than a plain product's
transposed one for the input gradient, and one batch keeps the weight gradient one product (a
batch per image would compute one per image and add them up).

The layer is ``keras.layers.Conv2D`` in everything else (weights, their shapes and names, bias,
activation, config), so a model's weights are the same whichever path a layer takes.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers, ops

MATMUL_MAX_PIXELS = 64
"""The largest image (height × width at that level) computed as a matrix product: 8×8 and below.
At 16×16 the two paths are within a few percent of each other; at 8×8 the product is 2× faster,
at 4×4 3–5× (bench/conv_kernels.py --layouts, float32 and bfloat16)."""


def prefers_matmul(height: int, width: int) -> bool:
    """Whether a stride-1 convolution over a ``height``×``width`` image should be a matrix product."""
    return height * width <= MATMUL_MAX_PIXELS


@keras.saving.register_keras_serializable(package="flexseg")
class MatmulConv2D(layers.Conv2D):
    """``keras.layers.Conv2D`` (stride 1, "same" padding, channels last, one group, any kernel size
    and dilation) computed as one matrix product of the image's gathered neighbourhoods and the
    kernel. Takes and saves what Conv2D does."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.strides != (1, 1) or self.padding != "same" or self.data_format != "channels_last" or self.groups != 1:
            raise ValueError("MatmulConv2D takes stride 1, 'same' padding, channels last and one group only")

    def convolution_op(self, inputs: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
        """``inputs`` (batch, height, width, in) and ``kernel`` (kh, kw, in, out) → (batch, height,
        width, out), as ``ops.conv`` with "same" padding gives it."""
        kh, kw, channels_in, channels_out = kernel.shape
        dh, dw = self.dilation_rate
        _, height, width, _ = inputs.shape
        pad_h, pad_w = (kh - 1) * dh, (kw - 1) * dw  # "same" at stride 1: the extra pixel, if odd, after
        padded = ops.pad(inputs, [[0, 0], [pad_h // 2, pad_h - pad_h // 2], [pad_w // 2, pad_w - pad_w // 2], [0, 0]])
        # Neighbour (i, j) of every pixel, in the order of the kernel's rows: (i·kw + j)·in + c.
        shifted = [
            padded[:, i * dh : i * dh + height, j * dw : j * dw + width, :] for i in range(kh) for j in range(kw)
        ]
        rows = ops.concatenate(shifted, axis=-1) if len(shifted) > 1 else shifted[0]
        rows = tf.reshape(rows, (1, -1, kh * kw * channels_in))  # one batch of all the pixels' rows
        matrix = tf.reshape(kernel, (kh * kw * channels_in, channels_out))
        return tf.reshape(tf.matmul(rows, matrix), (-1, height, width, channels_out))
