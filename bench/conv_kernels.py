"""GFLOP/s of single convolution kernels: forward, input gradient, weight gradient, per dtype.

    .venv/bin/python bench/conv_kernels.py [--float32-only]
    .venv/bin/python bench/conv_kernels.py --layouts    # NHWC against NCHW, float32

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


def gflops(fn, args, flop: float) -> float:
    fn(*args).numpy()
    t0 = time.perf_counter()
    fn(*args).numpy()
    return flop / (time.perf_counter() - t0) / 1e9


def layouts() -> None:
    """Forward and weight-gradient GFLOP/s of each shape in NHWC (TensorFlow's and flexseg's) and
    in NCHW (channels first), float32: does oneDNN prefer the other layout here?"""
    import tensorflow as tf

    print(f"{'layer':<20} {'layout':<7} {'forward':>9} {'d weight':>9}   GFLOP/s")
    for label, s, k, ci, co in SHAPES:
        if s > 128:
            continue
        flop = 2 * BATCH * s * s * k * k * ci * co
        w = tf.random.normal((k, k, ci, co))
        for layout in ("NHWC", "NCHW"):
            x = tf.random.uniform((BATCH, s, s, ci) if layout == "NHWC" else (BATCH, ci, s, s))
            dy = tf.random.uniform((BATCH, s, s, co) if layout == "NHWC" else (BATCH, co, s, s))
            forward = tf.function(lambda x, w, f=layout: tf.reduce_sum(tf.nn.conv2d(x, w, 1, "SAME", data_format=f)))
            d_weight = tf.function(
                lambda x, dy, f=layout: tf.reduce_sum(
                    tf.compat.v1.nn.conv2d_backprop_filter(x, (k, k, ci, co), dy, [1, 1, 1, 1], "SAME", data_format=f)
                )
            )
            rates = [gflops(forward, (x, w), flop), gflops(d_weight, (x, dy), flop)]
            print(f"{label:<20} {layout:<7} " + " ".join(f"{r:9.1f}" for r in rates), flush=True)


def main() -> None:
    from flexseg.tfenv import import_tensorflow_quietly

    import_tensorflow_quietly()
    import tensorflow as tf

    if "--layouts" in sys.argv:
        layouts()
        return

    tf.get_logger().setLevel("ERROR")  # one tf.function per kernel and shape: the retracing is wanted
    dtypes = [tf.float32] + ([tf.bfloat16] if "--float32-only" not in sys.argv else [])
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
