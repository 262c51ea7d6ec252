"""Convolutions computed as one matrix product: for the FlexUNet's deepest levels, where the image
is a few pixels wide and a layer holds millions of weights.

TensorFlow's CPU convolutions (oneDNN) are fast on wide images with few channels and slow on the
opposite: at NBM's 4×4, 2048-channel level (38 M weights a layer) a float32 Conv2D runs at about
30 GFLOP/s forward and with its gradients, where the same layer as a matrix product runs at
about 120 (``python bench/conv_kernels.py --layers``). So a layer whose image is at most
``MATMUL_MAX_PIXELS`` pixels gathers its k×k neighbourhoods into rows ("im2col": a pad, k² slices
and a concatenation, a few megabytes at these sizes) and multiplies them by the kernel seen as a
(k·k·in, out) matrix. The rows are one batch of all the pixels, (1, pixels, k·k·in): a batched
product's input gradient is TensorFlow's batched kernel, 2–3× faster here than a plain
product's transposed one, and one batch keeps the weight gradient one product.

The layers stay ``keras.layers.Conv2D``: only how this process computes them changes
(``use_matmul_where_faster``, applied when flexseg builds, loads or casts a model, on CPUs only).
A saved model is plain Keras, its weights and their names those of any Conv2D model, and Keras
alone loads it.
"""

from __future__ import annotations

import types

import keras
import tensorflow as tf

MATMUL_MAX_PIXELS = 64
"""The largest image (height × width at that layer) computed as a matrix product: 8×8 and below.
At 16×16 Conv2D is faster; at 8×8 the product is about 2× faster, at 4×4 about 4×, in float32
and bfloat16 (bench/conv_kernels.py --layers)."""


def prefers_matmul(height: int, width: int) -> bool:
    """Whether a stride-1 convolution over a ``height``×``width`` image should be a matrix product."""
    return height * width <= MATMUL_MAX_PIXELS


def matmul_convolution(layer: keras.layers.Conv2D, inputs: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
    """``layer``'s convolution (stride 1, "same" padding, channels last, one group) of ``inputs``
    (batch, height, width, in) by ``kernel`` (kh, kw, in, out) → (batch, height, width, out), as
    ``Conv2D.convolution_op`` gives it, computed as one matrix product."""
    kh, kw, channels_in, channels_out = kernel.shape
    dh, dw = layer.dilation_rate
    _, height, width, _ = inputs.shape
    pad_h, pad_w = (kh - 1) * dh, (kw - 1) * dw  # "same" at stride 1: the odd pixel, if any, goes after
    padded = tf.pad(inputs, [[0, 0], [pad_h // 2, pad_h - pad_h // 2], [pad_w // 2, pad_w - pad_w // 2], [0, 0]])
    # Neighbour (i, j) of every pixel, in the order of the kernel's rows: (i·kw + j)·in + c.
    shifted = [padded[:, i * dh : i * dh + height, j * dw : j * dw + width, :] for i in range(kh) for j in range(kw)]
    rows = tf.concat(shifted, axis=-1) if len(shifted) > 1 else shifted[0]
    rows = tf.reshape(rows, (1, -1, kh * kw * channels_in))  # one batch of all the pixels' rows
    matrix = tf.reshape(kernel, (kh * kw * channels_in, channels_out))
    return tf.reshape(tf.matmul(rows, matrix), (-1, height, width, channels_out))


def computes_as_matmul(layer: keras.layers.Layer) -> bool:
    """Whether ``layer`` is a Conv2D that this process computes as a matrix product."""
    op = getattr(layer, "convolution_op", None)
    return getattr(op, "__func__", None) is matmul_convolution


def use_matmul_where_faster(model: keras.Model) -> keras.Model:
    """Compute each of ``model``'s Conv2D layers that ``matmul_convolution`` can compute (stride 1,
    "same", channels last, one group) and whose input image ``prefers_matmul`` as a matrix
    product, in this process; the model, its weights and its saved form do not change. Returns
    ``model``. On a GPU nothing changes: the threshold was measured against oneDNN's CPU kernels,
    and cuDNN's are another matter."""
    if tf.config.list_logical_devices("GPU"):
        return model
    for layer in model.layers:
        if type(layer) is not keras.layers.Conv2D:  # Conv2DTranspose is a subclass: not this
            continue
        fits = layer.strides == (1, 1) and layer.padding == "same" and layer.groups == 1
        if fits and layer.data_format == "channels_last" and prefers_matmul(*layer.input.shape[1:3]):
            layer.convolution_op = types.MethodType(matmul_convolution, layer)
    return model
