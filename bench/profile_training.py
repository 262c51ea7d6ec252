"""Where NBM training time goes, by TensorFlow op, from the TensorFlow profiler.

    .venv/bin/python bench/profile_training.py [--steps 2] [--size 512] [--mixed-precision none]

Runs flexseg's training step (its input pipeline and compiled model, batch 2) for a warm-up
step, then traces ``--steps`` steps with tf.profiler and prints the ops' self time grouped by op
type, largest first, with each type's share. TensorFlow runs independent ops side by side (the
input and weight gradients of a layer), so op time adds up to more than the wall time of a step.
The trace stays in the printed folder for TensorBoard's profile plugin.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from inputs import NBM, nbm_pairs  # noqa: E402


def op_self_times(logdir: Path) -> dict[str, float]:
    """Self time in ms per op type, from the trace's framework_op_stats (host ops: this is a CPU)."""
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as plugin

    xplanes = sorted(logdir.rglob("*.xplane.pb"))
    raw, ok = plugin.xspace_to_tools_data([str(p) for p in xplanes], "framework_op_stats")
    if not ok:
        raise RuntimeError(f"could not read the trace in {logdir}")
    tables = json.loads(raw)
    table = tables[0] if isinstance(tables, list) else tables
    columns = [c["id"] for c in table["cols"]]
    kind, self_time = columns.index("type"), columns.index("total_self_time")
    host = columns.index("host_or_device") if "host_or_device" in columns else None
    totals: dict[str, float] = defaultdict(float)
    for row in table["rows"]:
        cells = [c.get("v") if isinstance(c, dict) else c for c in row["c"]]
        if host is not None and cells[host] not in ("Host", "host"):
            continue
        if cells[kind] == "IDLE":  # the profiler's idle time, not an op
            continue
        totals[cells[kind]] += float(cells[self_time]) / 1000.0  # µs -> ms
    return dict(totals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--mixed-precision", default="none", choices=["none", "bfloat16"])
    args = parser.parse_args()

    from flexseg.tfenv import import_tensorflow_quietly

    import_tensorflow_quietly()
    import tensorflow as tf

    from flexseg.config import load_experiment
    from flexseg.data.classes import ClassMap
    from flexseg.training.distribute import make_distribution
    from flexseg.training.fit import compiled_model, input_datasets

    exp = load_experiment(
        NBM, [f"image.width={args.size}", f"image.height={args.size}", f"train.mixed_precision={args.mixed_precision}"]
    )
    logdir = Path(tempfile.mkdtemp(prefix="flexseg-profile-"))
    pairs = nbm_pairs(logdir)
    train, _, _ = input_datasets(exp, make_distribution("none"), pairs, pairs[:2], ClassMap.from_experiment(exp))
    model = compiled_model(exp)
    batches = iter(train.repeat())
    model.train_on_batch(*next(batches))  # trace and warm up
    tf.profiler.experimental.start(str(logdir))
    for _ in range(args.steps):
        model.train_on_batch(*next(batches))
    tf.profiler.experimental.stop()

    times = op_self_times(logdir)
    total = sum(times.values())
    print(
        f"{args.steps} training steps of NBM at {args.size}×{args.size}, batch {exp.train.batch_size}, "
        f"{args.mixed_precision}: {total / 1000:.1f} s of op self time, {args.steps} steps (trace in {logdir})"
    )
    for name, ms in sorted(times.items(), key=lambda kv: -kv[1])[:15]:
        print(f"  {name:<36} {ms / 1000 / args.steps:7.3f} s/step  {100 * ms / total:5.1f}%")
    print(
        json.dumps(
            {
                "steps": args.steps,
                "size": args.size,
                "policy": args.mixed_precision,
                "self_ms_per_step_by_op": {k: round(v / args.steps, 1) for k, v in times.items()},
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
