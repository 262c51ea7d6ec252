"""flexseg benchmark suite: one process, a table on stderr and JSON on stdout.

    .venv/bin/python bench/run.py [--quick]      (make bench / make bench-quick)

Built so far (issue 6 is in progress):
  1. this machine's matmul rate, float32 and bfloat16 (the yardstick);
  2. the model's FLOPs per image, counted from its layers (bench/flops.py).
Training, inference, augmentation and memory runs are still separate scripts in bench/
(train_precision.py, augment_throughput.py) and join this entry point next.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))


def matmul_gflops(dtype: str, n: int, repeats: int) -> float:
    """Steady-state GFLOP/s of an n×n by n×n matmul in a tf.function (2n³ FLOPs each)."""
    import tensorflow as tf

    a = tf.random.stateless_uniform((n, n), seed=(1, 2), dtype=tf.float32)
    b = tf.random.stateless_uniform((n, n), seed=(3, 4), dtype=tf.float32)
    a, b = tf.cast(a, dtype), tf.cast(b, dtype)
    step = tf.function(lambda x, y: tf.reduce_sum(tf.cast(tf.matmul(x, y), tf.float32)))
    step(a, b).numpy()  # trace and warm up
    t0 = time.perf_counter()
    for _ in range(repeats):
        step(a, b).numpy()
    return 2 * n**3 * repeats / (time.perf_counter() - t0) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller problems, for a smoke run")
    parser.add_argument("--experiment", default=str(REPO / "experiments" / "nbm.yaml"))
    args = parser.parse_args()

    from flops import conv_flops

    from flexseg.config import load_experiment
    from flexseg.model.flexunet import build_from_experiment

    n, repeats = (1024, 3) if args.quick else (4096, 5)
    rows = []
    matmul = {dtype: round(matmul_gflops(dtype, n, repeats), 1) for dtype in ("float32", "bfloat16")}
    rows += [(f"matmul {n}² {dtype}", f"{v} GFLOP/s") for dtype, v in matmul.items()]
    exp = load_experiment(args.experiment)
    flops = conv_flops(build_from_experiment(exp))
    rows.append((f"{exp.name} forward, {exp.image.width}×{exp.image.height}", f"{flops / 1e9:.1f} GFLOP/image"))
    ceiling = matmul["float32"] * 1e9 / (3 * flops)  # training ≈ 3× the forward pass
    rows.append(("training ceiling at the float32 matmul rate", f"{ceiling:.2f} img/s"))

    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}", file=sys.stderr)
    print(json.dumps({
        "machine": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(), "quick": args.quick,
        "matmul_gflops": matmul, "matmul_size": n, "experiment": exp.name,
        "forward_gflop_per_image": round(flops / 1e9, 3), "training_ceiling_img_per_s": round(ceiling, 3),
    }, indent=1))


if __name__ == "__main__":
    main()
