"""GFLOP/s of single convolution kernels: forward, input gradient, weight gradient, per dtype.

    .venv/bin/python bench/conv_kernels.py [--float32-only]
    .venv/bin/python bench/conv_kernels.py --layouts [--float32-only]   # NHWC against NCHW
    .venv/bin/python bench/conv_kernels.py --layers [--float32-only]    # Conv2D against the matrix product

Shows which TensorFlow kernels are fast on this CPU (with flexseg's settings: oneDNN on). Each
shape is a layer of the NBM FlexUNet at batch 2; each kernel runs once to warm up, then is timed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BATCH = 2
SHAPES = [  # (label, size, kernel, in channels, out channels)
    ("128² 9×9 16→16", 128, 9, 16, 16),
    ("512² 9×9 16→16", 512, 9, 16, 16),
    ("32² 3×3 256→256", 32, 3, 256, 256),
    ("4² 3×3 2048→2048", 4, 3, 2048, 2048),
]
LAYOUT_SHAPES = [  # the NBM FlexUNet's levels 2-7 (the second convolution of each)
    ("128² 5×5 64→64", 128, 5, 64, 64),
    ("64² 3×3 128→128", 64, 3, 128, 128),
    ("32² 3×3 256→256", 32, 3, 256, 256),
    ("16² 3×3 512→512", 16, 3, 512, 512),
    ("8² 3×3 1024→1024", 8, 3, 1024, 1024),
    ("4² 3×3 2048→2048", 4, 3, 2048, 2048),
]


def gflops(fn, args, flop: float) -> float:
    fn(*args).numpy()
    t0 = time.perf_counter()
    fn(*args).numpy()
    return flop / (time.perf_counter() - t0) / 1e9


def layouts(dtypes) -> None:
    """Forward, input-gradient and weight-gradient GFLOP/s of the NBM FlexUNet's levels 2-7 in
    NHWC (TensorFlow's default) and in NCHW (channels first), per dtype, each the median of 3
    calls: where does oneDNN prefer channels first?"""
    import statistics

    import tensorflow as tf

    def rate(fn, args, flop):
        fn(*args).numpy()
        return statistics.median(gflops(fn, args, flop) for _ in range(3))

    print(f"{'layer':<20} {'dtype':<9} {'layout':<7} {'forward':>9} {'d input':>9} {'d weight':>9}   GFLOP/s")
    for label, s, k, ci, co in LAYOUT_SHAPES:
        flop = 2 * BATCH * s * s * k * k * ci * co
        for dtype in dtypes:
            w = tf.cast(tf.random.normal((k, k, ci, co)), dtype)
            for f in ("NHWC", "NCHW"):
                x = tf.cast(tf.random.uniform((BATCH, s, s, ci) if f == "NHWC" else (BATCH, ci, s, s)), dtype)
                dy = tf.cast(tf.random.uniform((BATCH, s, s, co) if f == "NHWC" else (BATCH, co, s, s)), dtype)
                x_shape = (BATCH, s, s, ci) if f == "NHWC" else (BATCH, ci, s, s)

                def total(t):
                    return tf.reduce_sum(tf.cast(t, tf.float32))

                forward = tf.function(lambda x, w, f=f: total(tf.nn.conv2d(x, w, 1, "SAME", data_format=f)))
                d_input = tf.function(
                    lambda dy, w, f=f, xs=x_shape: total(tf.nn.conv2d_transpose(dy, w, xs, 1, "SAME", data_format=f))
                )
                d_weight = tf.function(
                    lambda x, dy, f=f: total(
                        tf.compat.v1.nn.conv2d_backprop_filter(x, (k, k, ci, co), dy, [1] * 4, "SAME", data_format=f)
                    )
                )
                rates = [rate(forward, (x, w), flop), rate(d_input, (dy, w), flop), rate(d_weight, (x, dy), flop)]
                print(f"{label:<20} {dtype.name:<9} {f:<7} " + " ".join(f"{r:9.1f}" for r in rates), flush=True)


def layers(policies) -> None:
    """GFLOP/s of one layer of each of the NBM FlexUNet's levels 3-7, forward and forward plus both
    gradients, as Keras' Conv2D computes it and as flexseg does at its deepest levels (one matrix
    product, flexseg.model.matmul_conv), per Keras dtype policy, each the median of 5 calls: where the product wins."""
    import statistics
    import types

    import keras
    import tensorflow as tf

    from flexseg.model.matmul_conv import matmul_convolution

    def seconds(fn, x):
        fn(x).numpy()
        fn(x).numpy()
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            fn(x).numpy()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    print(f"{'layer':<20} {'policy':<15} {'Conv2D fwd':>10} {'fwd+bwd':>8} {'Matmul fwd':>11} {'fwd+bwd':>8}   GFLOP/s")
    for label, s, k, ci, co in [*LAYOUT_SHAPES[2:], ("8² 3×3 2048→1024", 8, 3, 2048, 1024)]:
        flop = 2 * BATCH * s * s * k * k * ci * co
        for policy in policies:
            rates = []
            for as_matmul in (False, True):
                layer = keras.layers.Conv2D(co, k, padding="same", activation="relu", dtype=policy)
                if as_matmul:
                    layer.convolution_op = types.MethodType(matmul_convolution, layer)
                x = tf.cast(tf.random.uniform((BATCH, s, s, ci)), layer.compute_dtype)
                layer.build(x.shape)

                def forward(x, layer=layer):
                    return tf.reduce_sum(tf.cast(layer(x), tf.float32))

                def both(x, layer=layer):
                    with tf.GradientTape() as tape:
                        tape.watch(x)
                        y = tf.reduce_sum(tf.cast(layer(x), tf.float32) ** 2)
                    dx, dw = tape.gradient(y, [x, layer.kernel])
                    return tf.reduce_sum(tf.cast(dx, tf.float32)) + tf.reduce_sum(tf.cast(dw, tf.float32))

                rates += [flop / seconds(tf.function(forward), x) / 1e9, 3 * flop / seconds(tf.function(both), x) / 1e9]
            print(
                f"{label:<20} {policy:<15} {rates[0]:10.0f} {rates[1]:8.0f} {rates[2]:11.0f} {rates[3]:8.0f}",
                flush=True,
            )


def main() -> None:
    from flexseg.tfenv import import_tensorflow_quietly

    import_tensorflow_quietly()
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # one tf.function per kernel and shape: the retracing is wanted
    dtypes = [tf.float32] + ([tf.bfloat16] if "--float32-only" not in sys.argv else [])
    if "--layouts" in sys.argv:
        layouts(dtypes)
        return
    if "--layers" in sys.argv:
        layers(["float32"] + (["mixed_bfloat16"] if tf.bfloat16 in dtypes else []))
        return

    print(f"{'layer':<20} {'dtype':<9} {'forward':>9} {'d input':>9} {'d weight':>9}   GFLOP/s")
    for label, s, k, ci, co in SHAPES:
        flop = 2 * BATCH * s * s * k * k * ci * co
        for dtype in dtypes:
            if dtype == tf.bfloat16 and s > 128:
                continue  # minutes per call here: the smaller shapes tell the same story
            x = tf.cast(tf.random.uniform((BATCH, s, s, ci)), dtype)
            w = tf.cast(tf.random.normal((k, k, ci, co)), dtype)
            dy = tf.cast(tf.random.uniform((BATCH, s, s, co)), dtype)

            def total(t):
                return tf.reduce_sum(tf.cast(t, tf.float32))

            forward = tf.function(lambda x, w: total(tf.nn.conv2d(x, w, 1, "SAME")))
            d_input = tf.function(lambda dy, w: total(tf.nn.conv2d_transpose(dy, w, (BATCH, s, s, ci), 1, "SAME")))
            d_weight = tf.function(
                lambda x, dy: total(tf.compat.v1.nn.conv2d_backprop_filter(x, (k, k, ci, co), dy, [1, 1, 1, 1], "SAME"))
            )
            rates = [gflops(forward, (x, w), flop), gflops(d_input, (dy, w), flop), gflops(d_weight, (x, dy), flop)]
            print(f"{label:<20} {dtype.name:<9} " + " ".join(f"{r:9.1f}" for r in rates), flush=True)


if __name__ == "__main__":
    main()
