"""Augmentation throughput: augmented image+mask pairs per second at 512×512.

Splits the real nbm-mini slices (24 RGB pairs, 512×512) into a temporary folder with
experiments/nbm.yaml, then runs `flexseg augment`'s code with the experiment's transform list
(the seed's set: flips, rot90, elastic / grid / barrel / pincushion / shrink, brightness,
gamma) on 1 and 2 threads. The time includes reading the sources and writing PNGs.

    .venv/bin/python bench/augment_throughput.py [--copies 8] [--experiment experiments/nbm.yaml]

The seed's ImageMaskDatasetGenerator did about 0.1 pairs/s on this machine (its barrel
distortion is a pure-Python pixel loop).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("FLEXSEG_DATASETS", REPO.parent / "shared" / "datasets"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default=str(REPO / "experiments" / "nbm.yaml"))
    parser.add_argument("--copies", type=int, default=8)
    args = parser.parse_args()

    from flexseg import console
    from flexseg.config import load_experiment
    from flexseg.data.augment import augment
    from flexseg.data.split import plan_split, write_split

    console.configure(quiet=True)
    with tempfile.TemporaryDirectory() as tmp:
        exp = load_experiment(args.experiment, [
            f"split.images={DATASETS / 'nbm-mini' / 'images'}", f"split.masks={DATASETS / 'nbm-mini' / 'masks'}",
            "split.pairing=stem", "split.mask_values=null", "split.group_pattern=null", "split.groups_csv=null",
            "split.ratios={train: 1.0}", f"data.root={tmp}/data", f"augment.copies={args.copies}",
        ])
        write_split(exp, plan_split(exp))
        augment(exp, force=True, workers=1)  # warm-up: imports, first-call set-up
        results = {}
        for workers in (1, 2):
            r = augment(exp, force=True, workers=workers)
            results[workers] = r
    print(json.dumps({
        "benchmark": "augment_throughput",
        "experiment": Path(args.experiment).name,
        "image_size": "512x512 RGB (nbm-mini)",
        "pairs": results[1].written,
        "pairs_per_second": {f"{w}_threads": round(r.pairs_per_second, 1) for w, r in results.items()},
        "speed_up_2_threads": round(results[2].pairs_per_second / results[1].pairs_per_second, 2),
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
    }, indent=1))


if __name__ == "__main__":
    main()
