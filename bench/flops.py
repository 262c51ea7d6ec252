"""Floating-point operations of a Keras model, counted from its layers (multiply and add = 2 FLOPs)."""

from __future__ import annotations


def conv_flops(model) -> int:
    """Forward FLOPs for one image: the convolutions and transposed convolutions, which are
    nearly all of a U-Net's work (ReLU, pooling, concatenation and softmax are left out)."""
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2DTranspose):
            _, h, w, cin = layer.input.shape
            kh, kw = layer.kernel_size
            total += 2 * h * w * kh * kw * cin * layer.filters
        elif isinstance(layer, keras.layers.Conv2D):
            _, h, w, cout = layer.output.shape
            kh, kw = layer.kernel_size
            cin = layer.input.shape[-1]
            total += 2 * h * w * kh * kw * cin * cout
    return int(total)
