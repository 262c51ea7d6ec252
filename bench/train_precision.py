"""Training speed of the NBM experiment at 512×512 under each mixed-precision policy.

Builds the experiment's model (the seed's FlexUNet, 125 M parameters) with
``train.mixed_precision`` none, then bfloat16 (and float16 with --float16), compiles it as
``flexseg train`` does, and times ``train_on_batch`` on real nbm-mini slices after one warm-up
step (graph tracing). Prints training images/s per policy, then all figures as JSON.

    .venv/bin/python bench/train_precision.py [--steps 3] [--experiment experiments/nbm.yaml]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("FLEXSEG_DATASETS", REPO.parent / "shared" / "datasets"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default=str(REPO / "experiments" / "nbm.yaml"))
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per policy")
    parser.add_argument("--float16", action="store_true", help="time float16 too (meant for GPUs)")
    args = parser.parse_args()

    import keras
    import numpy as np

    from flexseg.config import load_experiment
    from flexseg.data.classes import ClassMap
    from flexseg.data.pairing import pair_by_stem
    from flexseg.data.pipeline import load_pair
    from flexseg.model.losses import get_loss
    from flexseg.training.trainer import _build_in_precision

    exp = load_experiment(args.experiment)
    class_map = ClassMap.from_experiment(exp)
    mini = DATASETS / "nbm-mini"
    pairs = pair_by_stem(mini / "images", mini / "masks")
    batch = exp.train.batch_size
    needed = batch * (args.steps + 1)
    loaded = [load_pair(i, m, exp.image.width, exp.image.height, exp.image.channels, class_map)
              for i, m in (pairs * needed)[:needed]]
    images = np.stack([x for x, _ in loaded]).astype(np.float32)
    masks = np.eye(exp.num_classes, dtype=np.float32)[np.stack([y for _, y in loaded])]

    results = {}
    for policy in ["none", "bfloat16"] + (["float16"] if args.float16 else []):
        exp.train.mixed_precision = policy
        keras.utils.clear_session()
        model = _build_in_precision(exp)
        model.compile(optimizer=keras.optimizers.Adam(exp.train.learning_rate, clipvalue=exp.train.clipvalue),
                      loss=get_loss(exp.train.loss), jit_compile=exp.train.jit_compile)
        t0 = time.perf_counter()
        model.train_on_batch(images[:batch], masks[:batch])
        warmup = time.perf_counter() - t0
        t0 = time.perf_counter()
        for step in range(1, args.steps + 1):
            model.train_on_batch(images[step * batch:(step + 1) * batch], masks[step * batch:(step + 1) * batch])
        seconds = time.perf_counter() - t0
        results[policy] = {"images_per_second": round(batch * args.steps / seconds, 4),
                           "seconds_per_step": round(seconds / args.steps, 2), "warmup_seconds": round(warmup, 1)}
        print(f"{policy:9s} {results[policy]['images_per_second']:.3f} img/s "
              f"({results[policy]['seconds_per_step']:.1f} s per step of {batch}, warm-up {warmup:.0f} s)", flush=True)

    print(json.dumps({"experiment": exp.name, "size": [exp.image.width, exp.image.height], "batch": batch,
              "parameters": int(model.count_params()), "steps": args.steps, "machine": platform.processor() or platform.machine(),
              "cpu_count": os.cpu_count(), "results": results}, indent=1))


if __name__ == "__main__":
    main()
