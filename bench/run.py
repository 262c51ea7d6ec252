"""flexseg benchmark suite: one command, a table on stderr and JSON on stdout.

    .venv/bin/python bench/run.py [--quick] [--only NAME ...]   (make bench / make bench-quick)

Measures, in this order:
  0. the training input pipeline alone (bench/pipeline.py): images/s from nbm-mini's PNGs and
     KneeBones3Dify's DICOM slices, at 256² and 512², as they are and with the experiment's
     online augmentation, pinned to 1 and to 2 CPUs;
  1. this machine's matmul rate, float32 and bfloat16, through TensorFlow (the yardstick), and
     through NumPy's OpenBLAS for comparison;
  2. the model's FLOPs per image, counted from its layers (bench/flops.py);
  3. steady-state training images/s of the NBM experiment at batch 2, float32 and bfloat16, and
     the achieved GFLOP/s (3× the forward FLOPs per image) as a fraction of (1);
     then each lever tried for it (bench/levers.py: fused Adam, kept; XLA for the optimizer or
     the whole step, not kept), not with --quick;
  4. `flexseg infer` images/s over nbm-mini's 512×512 PNGs (decode and mask writing included),
     float32 and bfloat16;
  5. the plain-Keras peer (bench/peer.py): the same model trained with `model.fit` on arrays and
     used with `model.predict` on files read and written by OpenCV, against `flexseg train` and
     `flexseg infer`, in float32 and (where the CPU has it) bfloat16, the peer on Keras'
     mixed_bfloat16 policy: 5 pairs of processes a task and precision, the median ratio and spread;
  6. `flexseg augment` pairs/s at 512×512 with NBM's transforms (the seed's set);
  7. peak RSS of `flexseg train` and `flexseg infer` over 100 and 2,000 images, and of `flexseg
     infer` on a 512×512 volume of 40 and 300 slices (bench/memory.py), and of `flexseg export
     --format onnx` of the NBM model (bench/export_memory.py), and time and peak RSS of train,
     evaluate and infer of the shipped NBM model on 6 real slices (bench/shipped_model.py; these
     two not with --quick);
  8. `flexseg infer` with one fold of a 3-fold cross-validation against the ensemble of the three
     (bench/ensemble.py).
--quick runs each at a smaller size (128×128, fewer steps and images) as a smoke test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import peer  # noqa: E402
import speed  # noqa: E402
from flops import conv_flops  # noqa: E402
from inputs import NBM, nbm_pairs  # noqa: E402
from memory import peak_rss_mb  # noqa: E402

SECTIONS = ("pipeline", "matmul", "flops", "train", "levers", "infer", "peer", "augment", "memory", "ensemble")
POLICIES = {"float32": "none", "bfloat16": "bfloat16"}


def tf_matmul_gflops(dtype: str, n: int, repeats: int) -> float:
    """Steady-state GFLOP/s of an n×n by n×n matmul in a tf.function (2n³ FLOPs each)."""
    import tensorflow as tf

    a = tf.cast(tf.random.stateless_uniform((n, n), seed=(1, 2)), dtype)
    b = tf.cast(tf.random.stateless_uniform((n, n), seed=(3, 4)), dtype)
    step = tf.function(lambda x, y: tf.reduce_sum(tf.cast(tf.matmul(x, y), tf.float32)))
    step(a, b).numpy()  # trace and warm up
    t0 = time.perf_counter()
    for _ in range(repeats):
        step(a, b).numpy()
    return 2 * n**3 * repeats / (time.perf_counter() - t0) / 1e9


def numpy_matmul_gflops(n: int, repeats: int) -> float:
    import numpy as np

    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    a @ a
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ a
    return 2 * n**3 * repeats / (time.perf_counter() - t0) / 1e9


def peer_figures(size: int, quick: bool, bfloat16: bool) -> dict:
    """bench/peer.py's comparison: 5 pairs a precision (2 with --quick), float32 and, where the CPU
    computes it natively, bfloat16."""
    return peer.compare(2 if quick else 5, ["float32", "bfloat16"] if bfloat16 else ["float32"], size, show)


def show(label: str, value: str) -> None:
    """One row of the table, on stderr as it is measured."""
    print(f"  {label:<52} {value}", file=sys.stderr, flush=True)


def pipeline_rows(quick: bool, only: list[str]) -> dict:
    """{"pipeline": bench/pipeline.py's measurements}, shown; nothing unless asked for."""
    if "pipeline" not in only:
        return {}
    import pipeline

    rows = pipeline.measure(quick)
    for row in rows:
        if "images_per_second" in row:
            show(
                f"input pipeline, {row['source']} {row['size']}² {'augmented' if row['augment'] else 'as is'}, "
                f"{row['cores']} CPU{'s' if row['cores'] > 1 else ''}",
                f"{row['images_per_second']:7.1f} img/s ({row['images_per_second_per_core']:.1f} a core)",
            )
    return {"pipeline": rows}


def shipped_model_figures() -> dict:
    """bench/shipped_model.py's measurements, shown."""
    import shipped_model

    figures = shipped_model.measure()
    for command, one in figures.items():
        show(
            f"flexseg {command}, shipped NBM model, 6 real slices",
            f"{one['seconds']:7.1f} s, peak RSS {one['peak_rss_mb']} MB",
        )
    return figures


def lever_figures(quick: bool, only: list[str], bfloat16: bool) -> dict:
    """{"levers": bench/levers.py's measurements}: each training lever, 3 rounds of processes and
    the settings in turns in one process; not with --quick (full size only)."""
    if "levers" not in only or quick:
        return {}
    import levers

    precisions = ["float32", "bfloat16"] if bfloat16 else ["float32"]
    return {"levers": levers.measure(3, precisions, list(levers.LEVERS)) | levers.interleaved(precisions)}


def ensemble_figures(quick: bool, only: list[str]) -> dict:
    """{"ensemble": bench/ensemble.py's measurement}, shown; nothing unless asked for."""
    if "ensemble" not in only:
        return {}
    import ensemble

    f = ensemble.measure(quick)
    if "single" in f:
        show(
            f"flexseg infer, one fold vs {f['folds']} folds, {f['images']} images",
            f"{f['single']['images_per_second']:7.1f} vs {f['ensemble']['images_per_second']:.1f} img/s "
            f"(×{f['ensemble_over_single']:.2f} the time; "
            + (
                f"model {f['model_seconds_per_member']} s a member, the rest {f['rest_seconds']} s once)"
                if f["model_seconds_per_member"] is not None
                else "the model's share too small to tell here)"
            ),
        )
    return {"ensemble": f}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and counts: a smoke run of a few minutes")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="run these sections only")
    args = parser.parse_args()

    from flexseg import console
    from flexseg.tfenv import import_tensorflow_quietly

    import_tensorflow_quietly()
    console.configure(quiet=True)
    from flexseg.config import load_experiment
    from flexseg.model.flexunet import build_from_experiment
    from flexseg.tfenv import onednn_enabled

    quick = args.quick
    size = 128 if quick else 512
    exp_overrides = [f"image.width={size}", f"image.height={size}"]
    data: dict = {}
    data.update(
        machine=platform.processor() or platform.machine(),
        cpu_count=os.cpu_count(),
        quick=quick,
        onednn=onednn_enabled(),
        image_size=size,
        experiment=str(NBM.relative_to(NBM.parents[1])),
    )
    from flexseg.precision import CPU_BF16_FLAGS, choose, detect

    hardware = detect()
    data.update(
        cpu_bf16_flags=sorted(hardware.cpu_flags & CPU_BF16_FLAGS),
        gpus=len(hardware.gpus),
        auto_precision=choose("auto", hardware),
    )
    print(
        f"flexseg bench{' --quick' if quick else ''}: {data['cpu_count']} cores, oneDNN "
        f"{'on' if data['onednn'] else 'off'}, NBM FlexUNet at {size}×{size}; {hardware.describe()}: "
        f"precision auto = {data['auto_precision']}",
        file=sys.stderr,
    )

    data.update(pipeline_rows(quick, args.only))
    matmul = {}
    if "matmul" in args.only or "train" in args.only:
        n, repeats = (1024, 3) if quick else (4096, 5)
        matmul = {dtype: tf_matmul_gflops(dtype, n, repeats) for dtype in POLICIES}
        matmul["numpy_float32"] = numpy_matmul_gflops(n, repeats)
        for name, value in matmul.items():
            show(
                f"matmul {n}² {name.replace('_', ' ')}" + ("" if "numpy" in name else " (TensorFlow)"),
                f"{value:7.1f} GFLOP/s",
            )
        data["matmul_gflops"] = {k: round(v, 1) for k, v in matmul.items()}

    exp = load_experiment(NBM, exp_overrides)
    flops = conv_flops(build_from_experiment(exp))
    data["forward_gflop_per_image"] = round(flops / 1e9, 3)
    if "flops" in args.only:
        show("NBM forward, counted from the layers", f"{flops / 1e9:7.1f} GFLOP/image")
        if matmul:
            show(
                "training ceiling at the TF float32 matmul rate", f"{matmul['float32'] * 1e9 / (3 * flops):7.3f} img/s"
            )
            show("inference ceiling at the TF float32 matmul rate", f"{matmul['float32'] * 1e9 / flops:7.3f} img/s")

    with tempfile.TemporaryDirectory(prefix="flexseg-bench-") as tmp:
        pairs = nbm_pairs(Path(tmp))
        if "train" in args.only:
            data["training"] = {}
            for name, policy in POLICIES.items():
                steps = 2 if quick else (4 if name == "float32" else 2)
                r = speed.training_images_per_second(
                    load_experiment(NBM, exp_overrides + [f"train.mixed_precision={policy}"]),
                    pairs,
                    warmup=2,
                    steps=steps,
                )
                r["achieved_gflops"] = r["images_per_second"] * 3 * flops / 1e9
                r["fraction_of_tf_matmul"] = r["achieved_gflops"] / matmul[name]
                data["training"][name] = {k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}
                show(
                    f"training {name}, batch {r['batch']}",
                    f"{r['images_per_second']:7.3f} img/s = {r['achieved_gflops']:.1f} GFLOP/s, "
                    f"{100 * r['fraction_of_tf_matmul']:.0f}% of the {name} matmul rate",
                )
        data.update(lever_figures(quick, args.only, data["auto_precision"] == "bfloat16"))
        if "infer" in args.only:
            data["inference"] = {}
            images = [p for p, _ in pairs]
            for name, policy in POLICIES.items():
                count = len(images) if name == "float32" else 8
                run = speed.save_untrained_run(
                    load_experiment(NBM, exp_overrides + [f"train.mixed_precision={policy}"]), Path(tmp) / f"run-{name}"
                )
                r = speed.inference_images_per_second(run, images[:count], warm=4)
                if quick:  # a few small images: the difference of two runs is noise (it gave -8 and 736 img/s)
                    r["images_per_second"] = None
                data["inference"][name] = {k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}
                show(
                    f"flexseg infer {name}, {count} PNGs, batch {r['batch']}",
                    (
                        f"{r['images_per_second']:7.3f} img/s"
                        if r["images_per_second"] is not None
                        else "model rate: too few images to tell"
                    )
                    + f" (whole run {r['whole_run_images_per_second']:.3f})",
                )
        if "peer" in args.only:
            data["peer"] = peer_figures(size, quick, data["auto_precision"] == "bfloat16")
        if "augment" in args.only:
            r = speed.augmentation_pairs_per_second(NBM, pairs, copies=2 if quick else 8)
            data["augmentation"] = {k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()}
            show(
                f"flexseg augment, {r['pairs']} pairs, {r['threads']} threads", f"{r['pairs_per_second']:7.1f} pairs/s"
            )
    if "memory" in args.only:
        small, large = (20, 100) if quick else (100, 2000)
        data["peak_rss_mb"] = {}
        for task in ("train", "infer"):
            rss = {count: peak_rss_mb(task, count) for count in (small, large)}
            data["peak_rss_mb"][task] = {str(k): round(v) for k, v in rss.items()}
            data["peak_rss_mb"][task]["ratio"] = round(rss[large] / rss[small], 3)
            show(
                f"peak RSS flexseg {task}, {small} vs {large:,} images",
                f"{rss[small]:7.0f} MB vs {rss[large]:.0f} MB (×{rss[large] / rss[small]:.2f})",
            )
        slices = (8, 60) if quick else (40, 300)
        rss = {n: peak_rss_mb("volume", n) for n in slices}
        grown = (rss[slices[1]] - rss[slices[0]]) / ((slices[1] - slices[0]) * 512 * 512 * 2 / 1e6)
        data["peak_rss_mb"]["infer_volume"] = {str(k): round(v) for k, v in rss.items()} | {
            "mb_per_mb_of_int16_volume": round(grown, 2)
        }
        show(
            f"peak RSS flexseg infer, 512²×{slices[0]} vs ×{slices[1]} volume",
            f"{rss[slices[0]]:7.0f} MB vs {rss[slices[1]]:.0f} MB ({grown:.2f} MB per MB of volume)",
        )
        if not quick:  # the seed's NBM model (125 M parameters): trained, scored, inferred; exported to ONNX
            data["shipped_nbm_model"] = shipped_model_figures()

            from export_memory import measure

            onnx = measure("onnx", 512, cap_gb=20)
            data["peak_rss_mb"]["export_onnx_nbm"] = onnx
            show(
                "peak RSS flexseg export --format onnx, NBM 512²",
                f"{onnx['peak_rss_mb']:7.0f} MB for {onnx['model_keras_mb']} MB of weights (exit {onnx['exit_code']})",
            )
    data.update(ensemble_figures(quick, args.only))
    print(json.dumps(data, indent=1))


if __name__ == "__main__":
    main()
