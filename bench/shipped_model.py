"""The shipped NBM experiment as it is (125 M parameters) on real CT: time and peak memory.

    .venv/bin/python bench/shipped_model.py        (bench/run.py runs it as its "shipped" section)

`flexseg train` one epoch on 6 nbm-mini slices at 128×128, then `flexseg evaluate` and `flexseg
infer` of the same slices (masks at their own 512×512), each a separate process under
/usr/bin/time, which gives its peak resident memory. make test runs this experiment on the same
slices with a small model (tests/test_real_data.py); this is the check that the seed's own model
size trains, scores and infers here without being killed for memory.
Prints one JSON object: per command, seconds and peak RSS in MB.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from inputs import DATASETS, NBM  # noqa: E402

FLEXSEG = [sys.executable, "-m", "flexseg.cli"]


def _timed(args: list[str], scratch: Path) -> dict:
    """Run one flexseg command under /usr/bin/time; its wall seconds and peak RSS in MB."""
    report = scratch / "time.txt"
    done = subprocess.run(  # noqa: S603 (our own command)
        ["/usr/bin/time", "-o", str(report), "-f", "%e %M", *FLEXSEG, "--quiet", *args],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise RuntimeError(f"flexseg {args[0]} failed with exit code {done.returncode}:\n{done.stderr[-2000:]}")
    seconds, kb = report.read_text().split()[-2:]
    return {"seconds": float(seconds), "peak_rss_mb": round(int(kb) / 1024)}


def measure() -> dict:
    """Train, evaluate and infer the shipped NBM model; {command: {seconds, peak_rss_mb}}."""
    mini = DATASETS / "nbm-mini"
    if not (mini / "images").is_dir():
        raise SystemExit(f"{mini} is not there: this benchmark needs the real nbm-mini slices")
    with tempfile.TemporaryDirectory(prefix="flexseg-bench-shipped-") as tmp:
        scratch = Path(tmp)
        few = scratch / "nbm-6"
        for kind in ("images", "masks"):
            (few / kind).mkdir(parents=True)
            for path in sorted((mini / kind).iterdir())[:6]:
                (few / kind / path.name).symlink_to(path)
        sets = [f"data.{split}={few}" for split in ("train", "valid", "test")]
        sets += ["image.width=128", "image.height=128", "train.epochs=1", f"run_dir={scratch / 'run'}"]
        sets += [f"infer.images={few / 'images'}"]
        options = [a for s in sets for a in ("--set", s)]
        results = {
            "train": _timed(["train", str(NBM), *options], scratch),
            "evaluate": _timed(["evaluate", str(NBM), *options], scratch),
            "infer": _timed(["infer", str(NBM), "--output", str(scratch / "masks"), *options], scratch),
        }
        masks = [p for p in (scratch / "masks").iterdir() if not p.name.startswith(".flexseg")]
        if len(masks) != 6:
            raise RuntimeError(f"infer wrote {len(masks)} masks, not 6")
        return results


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
