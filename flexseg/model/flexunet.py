"""FlexUNet: the legacy scripts' U-Net, rebuilt in Keras 3 with no Lambda layers (safe to load)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flexseg import tfenv  # noqa: I001 (TensorFlow's settings before it loads)

tfenv.load_tensorflow()

import keras
from keras import layers

from flexseg.model.matmul_conv import use_matmul_where_faster

if TYPE_CHECKING:
    from flexseg.config import Experiment


def kernel_schedule(base_kernel: int, num_layers: int) -> list[int]:
    """Kernel size per level: ``base_kernel`` shrinking by 2 per level, never below 3."""
    return [max(3, base_kernel - 2 * i) for i in range(num_layers)]


def dilation_schedule(base_dilation: int, num_layers: int) -> list[int]:
    """Dilation per level: ``base_dilation`` shrinking by 1 per level, never below 1."""
    return [max(1, base_dilation - i) for i in range(num_layers)]


def build_flexunet(
    *,
    width: int,
    height: int,
    channels: int,
    num_classes: int,
    base_filters: int = 16,
    max_filters: int | None = None,
    base_kernels: tuple[int, int] = (3, 3),
    num_layers: int = 6,
    dropout_rate: float = 0.0,
    dilation: tuple[int, int] = (1, 1),
    normalization: bool = False,
    input_normalize: bool = True,
    name: str = "flexunet",
) -> keras.Model:
    """Level i has two convolutions of ``base_filters·2^i`` filters (at most ``max_filters``) and
    dropout ``dropout_rate·i``;
    the decoder mirrors the encoder without its bottom level; a 1×1 softmax head gives class
    probabilities (kept float32 under mixed precision). The convolutions of levels whose image is
    a few pixels wide are computed as matrix products (``matmul_conv``; the layers are Conv2D)."""
    kernels = kernel_schedule(base_kernels[0], num_layers)
    dilations = dilation_schedule(dilation[0], num_layers)

    def conv(x: keras.KerasTensor, filters: int, level: int):
        x = layers.Conv2D(
            filters,
            kernels[level],
            activation="relu",
            kernel_initializer="he_normal",
            dilation_rate=dilations[level],
            padding="same",
        )(x)
        return layers.BatchNormalization()(x) if normalization else x

    inputs = keras.Input((height, width, channels), name="image")
    x = layers.Rescaling(1.0 / 255.0, name="input_scaling")(inputs) if input_normalize else inputs

    skips = []
    for level in range(num_layers):
        filters = min(base_filters * 2**level, max_filters or base_filters * 2**level)
        x = conv(x, filters, level)
        x = layers.Dropout(dropout_rate * level)(x)
        x = conv(x, filters, level)
        skips.append(x)
        if level < num_layers - 1:
            x = layers.MaxPooling2D(2)(x)

    for level in reversed(range(num_layers - 1)):
        filters = min(base_filters * 2**level, max_filters or base_filters * 2**level)
        x = layers.Conv2DTranspose(filters, 2, strides=2, padding="same")(x)
        x = layers.Concatenate()([x, skips[level]])
        x = conv(x, filters, level)
        x = layers.Dropout(dropout_rate * level)(x)
        x = conv(x, filters, level)

    outputs = layers.Conv2D(num_classes, 1, activation="softmax", dtype="float32", name="probabilities")(x)
    return use_matmul_where_faster(keras.Model(inputs, outputs, name=name))


def build_from_experiment(exp: Experiment) -> keras.Model:
    m = exp.model
    return build_flexunet(
        width=exp.image.width,
        height=exp.image.height,
        channels=exp.image.channels,
        num_classes=exp.num_classes,
        base_filters=m.base_filters,
        max_filters=m.max_filters,
        base_kernels=m.base_kernels,
        num_layers=m.num_layers,
        dropout_rate=m.dropout_rate,
        dilation=m.dilation,
        normalization=m.normalization,
        input_normalize=m.input_normalize,
        name=f"flexunet_{exp.name}".replace(".", "_"),
    )
