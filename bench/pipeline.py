"""Input pipeline throughput: what flexseg's training input delivers with no model behind it.

    .venv/bin/python bench/pipeline.py [--quick]     (bench/run.py runs it as its "pipeline" section)

The pipeline is the one `flexseg train` builds (flexseg.data.pipeline.segmentation_dataset):
decode, mask to class indices, online augmentation when asked, resize to the model's size,
one-hot, batches of 2, prefetch. Inputs are real: nbm-mini's 512×512 RGB PNG pairs (NBM's
classes and transforms) and KneeBones3Dify's 512×512 16-bit DICOM slices with their PNG masks
(that experiment's classes and transforms), repeated to make a long epoch (the files stay in the
page cache, as a dataset that is read every epoch does).

Each measurement runs in its own process, pinned to 1 or 2 CPUs before TensorFlow starts (it
sizes its thread pools from the CPUs it may use), and reports images per second over whole
passes after a warm-up pass (the median pass). The combinations are measured in turn, three
rounds (one with --quick), and each figure is the median of its rounds: this host's speed drifts
by a third within minutes. Prints one JSON object; bench/run.py turns it into a table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from inputs import DATASETS, REPO  # noqa: E402

SOURCES = {
    "png": (REPO / "experiments" / "nbm.yaml", DATASETS / "nbm-mini"),
    "dicom": (REPO / "experiments" / "kneebones3dify.yaml", DATASETS / "kneebones3dify-raw"),
}


def _pairs(source: str) -> list[tuple[Path, Path]]:
    from flexseg.data.pairing import pair_folders

    folder = SOURCES[source][1]
    if source == "png":
        return pair_folders(folder / "images", folder / "masks").pairs
    return pair_folders(folder / "Data", folder / "GT-Masks", "instance_number").pairs


def _measure(source: str, size: int, augment: bool, cores: int, images: int) -> dict:
    """In this process: pin to ``cores`` CPUs, build the pipeline, time it."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < cores:
        return {"skipped": f"only {len(allowed)} CPUs here"}
    os.sched_setaffinity(0, allowed[:cores])  # before TensorFlow loads: it sizes its pools from these
    from flexseg import console
    from flexseg.config import load_experiment
    from flexseg.data.classes import ClassMap
    from flexseg.data.pipeline import OnlineAugmenter, segmentation_dataset

    console.configure(quiet=True)
    exp = load_experiment(SOURCES[source][0], [f"image.width={size}", f"image.height={size}"])
    pairs = _pairs(source)
    pairs = (pairs * -(-images // len(pairs)))[:images]
    ds = segmentation_dataset(
        pairs,
        width=size,
        height=size,
        channels=exp.image.channels,
        class_map=ClassMap.from_experiment(exp),
        batch_size=2,
        shuffle=True,
        seed=1,
        augment=OnlineAugmenter(exp.augment.transforms) if augment else None,
    )
    for _ in ds:  # warm-up pass: thread pools, caches, the autotuner
        pass
    rates: list[float] = []
    started = time.perf_counter()
    while len(rates) < 2 or time.perf_counter() - started < 3:
        t0 = time.perf_counter()
        for _ in ds:
            pass
        rates.append(len(pairs) / (time.perf_counter() - t0))
    rates.sort()
    return {
        "images_per_second": round(rates[len(rates) // 2], 1),  # the median pass
        "spread": [round(rates[0], 1), round(rates[-1], 1)],
        "passes": len(rates),
    }


def _child(source: str, size: int, augment: bool, cores: int, images: int) -> dict:
    args = [source, str(size), str(int(augment)), str(cores), str(images)]
    done = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True)  # noqa: S603
    if done.returncode:
        raise RuntimeError(f"bench/pipeline.py {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(quick: bool = False, rounds: int = 3) -> list[dict]:
    """Every combination, each in a child process, in ``rounds`` rounds that take the combinations
    in turn (the host's speed drifts within minutes: each figure is the median of its rounds);
    a list of rows with images_per_second, its rounds, and images_per_second_per_core."""
    combos = [
        (source, size, augment, cores)
        for source in SOURCES
        if SOURCES[source][1].is_dir()
        for size in (256, 512)
        for augment in (False, True)
        for cores in (1, 2)
    ]
    rounds = 1 if quick else rounds
    results: dict[tuple, list[dict]] = {combo: [] for combo in combos}
    for _ in range(rounds):
        for combo in combos:
            results[combo].append(_child(*combo, 48 if quick else 192))
    rows = [{"source": s, "skipped": f"{SOURCES[s][1]} is not there"} for s in SOURCES if not SOURCES[s][1].is_dir()]
    for (source, size, augment, cores), measured in results.items():
        row = {"source": source, "size": size, "augment": augment, "cores": cores}
        if "skipped" in measured[0]:
            rows.append(row | measured[0])
            continue
        rates = sorted(m["images_per_second"] for m in measured)
        row["images_per_second"] = rates[len(rates) // 2]
        row["rounds"] = rates
        row["images_per_second_per_core"] = round(row["images_per_second"] / cores, 1)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images a pass")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        source, size, augment, cores, images = args.child
        print(json.dumps(_measure(source, int(size), bool(int(augment)), int(cores), int(images))))
        return
    rows = measure(args.quick)
    for row in rows:
        if "images_per_second" in row:
            what = (
                f"{row['source']} {row['size']}² {'augmented' if row['augment'] else 'as is'}, {row['cores']} core(s)"
            )
            print(f"  {what:<40} {row['images_per_second']:7.1f} img/s", file=sys.stderr)
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
