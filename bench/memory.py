"""Peak memory of `flexseg train` and `flexseg infer` as the dataset grows.

    .venv/bin/python bench/memory.py train|infer|volume COUNT     (one measurement; bench/run.py runs it)

Each measurement is its own process (peak RSS is a per-process high-water mark); the parent reads
the child's own high-water mark (VmHWM). The data are COUNT synthetic 512×512 CT-like pairs (24 distinct
slices, the rest hard links: the same decode cost), the model a small FlexUNet at 512×512 (base 4,
4 levels), trained one epoch at batch 2 or used to infer COUNT images: what could grow with the
dataset is flexseg's pipeline, queues and bookkeeping, not the model. ``volume`` infers one
512×512×COUNT int16 NIfTI volume (percentile mapping): what grows there is the volume itself
(flexseg holds it, its 8-bit slices and the labels; float temporaries one slab at a time).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from inputs import REPO, synthetic_pairs  # noqa: E402

SMALL_MODEL = [
    "image.width=512",
    "image.height=512",
    "model.base_filters=4",
    "model.num_layers=4",
    "model.base_kernels=[3, 3]",
    "train.batch_size=2",
    "train.epochs=1",
    "train.num_infer_images=2",
]


def peak_rss_mb(task: str, count: int) -> float:
    """Run one measurement in a child process and return its peak resident memory in MB.

    The child reports its own VmHWM: the ru_maxrss that wait4 gives a parent counts the memory
    of the forking parent as well (Linux carries the pre-exec high-water mark over)."""
    done = subprocess.run([sys.executable, __file__, task, str(count)], capture_output=True, text=True)  # noqa: S603 (our own script)
    if done.returncode:
        raise RuntimeError(
            f"bench/memory.py {task} {count} failed with exit code {done.returncode}:\n{done.stderr[-2000:]}"
        )
    return float(done.stdout.strip().splitlines()[-1]) / 1024


def _high_water_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def _run(task: str, count: int) -> None:
    from flexseg import console
    from flexseg.tfenv import import_tensorflow_quietly

    import_tensorflow_quietly()
    console.configure(quiet=True)
    from flexseg.config import load_experiment

    with tempfile.TemporaryDirectory(prefix="flexseg-bench-memory-") as tmp:
        root = Path(tmp)
        pairs = synthetic_pairs(root / "pool", count + 8)
        data = root / "data"
        for split, chunk in (("train", pairs[:count]), ("valid", pairs[count:])):
            for kind, index in (("images", 0), ("masks", 1)):
                (data / split / kind).mkdir(parents=True)
                for pair in chunk:
                    os.link(pair[index], data / split / kind / pair[index].name)
        exp = load_experiment(
            REPO / "experiments" / "demo.yaml",
            SMALL_MODEL + [f"data.root={data}", f"run_dir={root / 'run'}", f"infer.images={data / 'valid' / 'images'}"],
        )
        if task == "volume":
            return _infer_volume(exp, root, count)
        if task == "train":
            from flexseg.commands.train import train

            train(exp)
        else:
            from speed import save_untrained_run

            from flexseg.commands.infer import infer

            infer(save_untrained_run(exp, root / "run"), [p for p, _ in pairs[:count]], root / "masks", batch_size=4)


def _infer_volume(exp, root: Path, slices: int) -> None:
    import nibabel as nib
    import numpy as np
    from speed import save_untrained_run

    from flexseg.commands.infer import infer

    folder = root / "volumes"
    folder.mkdir()
    voxels = np.random.default_rng(0).integers(-1000, 1500, size=(512, 512, slices), dtype=np.int16)
    nib.save(nib.Nifti1Image(voxels, np.diag([0.7, 0.7, 1.5, 1.0])), str(folder / "scan.nii"))
    del voxels
    infer(save_untrained_run(exp, root / "run"), [folder / "scan.nii"], root / "labels", batch_size=4)


if __name__ == "__main__":
    _run(sys.argv[1], int(sys.argv[2]))
    print(_high_water_kb())
