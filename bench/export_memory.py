"""Peak memory of `flexseg export` on the seed's NBM model (125 M parameters, 500 MB of weights).

    .venv/bin/python bench/export_memory.py [--format onnx] [--size 512] [--cap-gb 20]

Builds an untrained NBM run (experiments/nbm.yaml; the export's memory does not depend on the
weights' values) in a temporary folder, runs the real `flexseg export` as a child process and
samples its resident memory every 0.1 s (and its own high-water mark, VmHWM, while it lives).
A child that passes ``--cap-gb`` is killed so that the machine survives the measurement: the
result then says "killed at the cap". Prints one JSON line: format, size, parameters, weights
in MB, peak RSS in MB, seconds, exit code.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from inputs import REPO  # noqa: E402


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _make_run(run_dir: Path, size: int) -> dict:
    from speed import save_untrained_run

    from flexseg.config import load_experiment
    from flexseg.model.store import load_model

    exp = load_experiment(
        REPO / "experiments" / "nbm.yaml",
        [f"image.width={size}", f"image.height={size}", "train.mixed_precision=none", f"run_dir={run_dir}"],
    )
    save_untrained_run(exp, run_dir)
    model = load_model(run_dir)
    return {
        "parameters": int(model.count_params()),
        "model_keras_mb": round((run_dir / "model.keras").stat().st_size / 1e6),
    }


def measure(fmt: str, size: int, cap_gb: float) -> dict:
    flexseg = Path(sys.executable).with_name("flexseg")
    with tempfile.TemporaryDirectory(prefix="flexseg-bench-export-") as tmp:
        run_dir = Path(tmp) / "nbm"
        facts = _make_run(run_dir, size)
        started = time.perf_counter()
        child = subprocess.Popen(  # noqa: S603 (our own command)
            # untrained weights on raw 0..255 pixels saturate the softmax: ORT and TensorFlow round
            # apart by up to 2e-4 there (Keras' own exporter gives the same difference)
            [
                str(flexseg),
                "export",
                str(run_dir),
                "--format",
                fmt,
                "--output",
                str(Path(tmp) / "out"),
                "--tolerance",
                "1e-3",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        peak_kb, killed = 0, False
        while child.poll() is None:
            peak_kb = max(peak_kb, _status_kb(child.pid, "VmHWM"), _status_kb(child.pid, "VmRSS"))
            if peak_kb > cap_gb * 2**20:
                child.kill()
                killed = True
            time.sleep(0.1)
        output = child.communicate()[0]
        return {
            "format": fmt,
            "size": size,
            **facts,
            "peak_rss_mb": round(peak_kb / 1024),
            "seconds": round(time.perf_counter() - started, 1),
            "exit_code": child.returncode,
            "killed_at_cap": killed,
            "last_line": output.strip().splitlines()[-1][:300] if output.strip() else "",
        }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--format", default="onnx", choices=("onnx", "savedmodel", "tflite"))
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--cap-gb", type=float, default=20.0)
    args = parser.parse_args()
    print(json.dumps(measure(args.format, args.size, args.cap_gb)))
