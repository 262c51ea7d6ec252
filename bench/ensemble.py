"""What an ensemble costs: `flexseg infer` with one fold of a cross-validation against the
ensemble of its K folds, on the same images.

    .venv/bin/python bench/ensemble.py [--quick]     (bench/run.py runs it as its "ensemble" section)

A 3-fold cross-validation of NBM's experiment with a small model (base 8, 4 levels) at 512×512 is made by
the real commands (split --folds 3, train --folds, one epoch each) on nbm-mini's slices; then
`flexseg infer` over 96 of them (hard links: 24 slices, 4 times) with `--model RUN/fold_0` and
with `--model RUN`, alternately, 3 times each (the medians). The ensemble decodes each image
once and runs the K models on the same batch, so its extra time over one fold should be about
(K - 1) times the model's share of the single run, not K times the whole run.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from inputs import DATASETS, REPO  # noqa: E402

FLEXSEG = [sys.executable, "-m", "flexseg.cli", "--quiet"]
FOLDS = 3


def _run(args: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    done = subprocess.run([*FLEXSEG, *args], cwd=cwd, capture_output=True, text=True)  # noqa: S603 (our command)
    if done.returncode:
        raise RuntimeError(f"flexseg {' '.join(args[:3])} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return time.perf_counter() - t0


def measure(quick: bool = False) -> dict:
    """Seconds and images/s of infer with one fold and with the ensemble of FOLDS folds."""
    mini = DATASETS / "nbm-mini"
    if not (mini / "images").is_dir():
        return {"skipped": f"{mini} is not there"}
    size = 128 if quick else 512
    copies = 1 if quick else 4
    with tempfile.TemporaryDirectory(prefix="flexseg-bench-ensemble-") as tmp:
        home = Path(tmp)
        images = home / "images"
        images.mkdir()
        for k in range(copies):
            for path in sorted((mini / "images").iterdir()):
                os.link(path, images / f"{k}_{path.name}")
        sets = [
            f"split.images={mini / 'images'}",
            f"split.masks={mini / 'masks'}",
            f"image.width={size}",
            f"image.height={size}",
            "model.base_filters=8",
            "model.num_layers=4",
            "train.epochs=1",
            "train.num_infer_images=0",
            "augment.online=false",
            f"data.root={home / 'data'}",  # absolute: relative paths are the experiment file's
            f"run_dir={home / 'runs' / 'cv'}",
        ]
        options = [a for s in sets for a in ("--set", s)]
        experiment = str(REPO / "experiments" / "nbm.yaml")
        _run(["split", experiment, "--folds", str(FOLDS), *options], home)
        _run(["train", experiment, "--folds", *options], home)
        seconds: dict[str, list[float]] = {"single": [], "ensemble": []}
        for i in range(1 if quick else 3):
            for kind, model in (("single", home / "runs/cv/fold_0"), ("ensemble", home / "runs/cv")):
                out = f"out_{kind}_{i}"
                seconds[kind].append(
                    _run(["infer", "--model", str(model), "--images", str(images), "--output", out], home)
                )
    count = copies * 24
    result: dict = {"folds": FOLDS, "images": count, "size": size}
    for kind, values in seconds.items():
        median = sorted(values)[len(values) // 2]
        result[kind] = {"seconds": round(median, 2), "runs": [round(v, 2) for v in values]}
        result[kind]["images_per_second"] = round(count / median, 1)
    single, ensemble = result["single"]["seconds"], result["ensemble"]["seconds"]
    result["ensemble_over_single"] = round(ensemble / single, 2)
    # single = rest + model, ensemble = rest + K·model: the model's time and the rest (start-up,
    # decoding, writing), which an ensemble pays once
    # (None with --quick, one run of small images: the difference is noise; so when it is not positive)
    model = (ensemble - single) / (FOLDS - 1)
    known = model > 0 and not quick
    result["model_seconds_per_member"] = round(model, 2) if known else None
    result["rest_seconds"] = round(single - model, 2) if known else None
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="128×128, 24 images, one run each")
    print(json.dumps(measure(parser.parse_args().quick), indent=1))


if __name__ == "__main__":
    main()
