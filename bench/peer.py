"""flexseg against a plain-Keras peer: the same FlexUNet trained and used the way the Keras guides
show it, with none of flexseg's code paths (no tf.data pipeline, callbacks, run folder, checks).

    .venv/bin/python bench/peer.py [--pairs 5] [--precisions float32 bfloat16] [--tasks train infer] [--size 512]

Training: ``model.fit`` on arrays decoded up front, with validation, against ``flexseg train``;
images/s over the epochs after the first (which traces the graph), validation and (flexseg's)
checkpoints included. In bfloat16 the peer sets Keras' ``mixed_bfloat16`` policy, as the Keras
mixed-precision guide says; flexseg trains with ``train.mixed_precision: bfloat16``.

Inference: the whole job from files to files on both sides. The peer reads each PNG with
OpenCV, resizes it to the model's size, runs ``model.predict`` over them (batch 4), takes the
argmax, resizes back and writes a PNG; its model is built under the policy and the run's
weights loaded, as a mixed-precision user does. flexseg runs ``flexseg infer`` (the API call) on
the same files and model.

Each measurement is its own process. The host changes speed under a running process (one
plain-Keras training ran its epochs at 2.22, 1.72, 2.21, 2.26, 2.29, 2.25 and 1.63 s an image),
so the two sides run as pairs, back to back, the order alternating from pair to pair, and the
figure is the median of the pairs' ratios flexseg / plain, with their spread (lowest, highest).

One side alone, as a JSON line (what the comparison runs):

    .venv/bin/python bench/peer.py --one train|infer plain|flexseg PRECISION SIZE
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TRAIN, VALID = 12, 4  # a training epoch: 12 train and 4 valid NBM images, batch 2
EPOCHS = 2  # the first traces the graph; the second is timed
INFER_IMAGES = 48  # nbm-mini's 24 slices twice over (links: the same decode cost)
BATCH = 4  # the prediction batch of both sides (flexseg's default)
POLICIES = {"float32": "none", "bfloat16": "bfloat16"}  # train.mixed_precision
TASKS = ("train", "infer")
KERAS_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16"}  # the peer's global policy


def decode(pairs: list[tuple[Path, Path]], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, size, size, 3) float32 0..255 and one-hot masks (N, size, size, 2): white is the
    lesion, as NBM's JPEG-noisy masks are read by their nearest colour."""
    import cv2

    images, masks = [], []
    for image, mask in pairs:
        rgb = cv2.cvtColor(cv2.imread(str(image), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        images.append(cv2.resize(rgb, (size, size), interpolation=cv2.INTER_LINEAR))
        grey = cv2.resize(cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE), (size, size), interpolation=cv2.INTER_NEAREST)
        masks.append(np.eye(2, dtype=np.float32)[(grey > 127).astype(np.int64)])
    return np.stack(images).astype(np.float32), np.stack(masks)


def plain_model(exp, precision: str):
    """The experiment's FlexUNet built under the Keras policy a plain user sets for ``precision``,
    every Conv2D computed as Keras computes it (flexseg computes its deepest levels as matrix
    products: flexseg.model.matmul_conv; the layers and weights are the same)."""
    import keras
    from levers import convolutions_everywhere

    import flexseg.model.matmul_conv as matmul_conv
    from flexseg.model.flexunet import build_from_experiment

    keras.utils.set_random_seed(exp.train.seed)
    keras.config.set_dtype_policy(KERAS_POLICIES[precision])
    with convolutions_everywhere():
        model = build_from_experiment(exp)
    if any(matmul_conv.computes_as_matmul(layer) for layer in model.layers):
        raise RuntimeError("the plain model computes a layer as flexseg does")
    return model


def plain_training(exp, pairs: list[tuple[Path, Path]], precision: str) -> dict:
    """Images/s of ``model.fit`` on arrays with validation over the epochs after the first."""
    import keras

    class EpochEnds(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.ends: list[float] = []

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.ends.append(time.perf_counter())

    x, y = decode(pairs[: TRAIN + VALID], exp.image.width)
    model = plain_model(exp, precision)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=exp.train.learning_rate, clipvalue=exp.train.clipvalue),
        loss="categorical_crossentropy",
    )
    ends = EpochEnds()
    model.fit(
        x[:TRAIN],
        y[:TRAIN],
        batch_size=exp.train.batch_size,
        epochs=EPOCHS,
        validation_data=(x[TRAIN:], y[TRAIN:]),
        callbacks=[ends],
        verbose=0,
    )
    return {"images_per_second": TRAIN * (EPOCHS - 1) / (ends.ends[-1] - ends.ends[0])}


def flexseg_training(exp_path: Path, overrides: list[str], pairs: list[tuple[Path, Path]], precision: str) -> dict:
    """``flexseg train`` (the API call): its images/s over the epochs after the first, validation,
    callbacks and checkpoints included."""
    from flexseg.commands.train import train
    from flexseg.config import load_experiment

    with tempfile.TemporaryDirectory(prefix="flexseg-bench-peer-") as tmp:
        data = Path(tmp) / "data"
        for split, chunk in (("train", pairs[:TRAIN]), ("valid", pairs[TRAIN : TRAIN + VALID])):
            for kind, index in (("images", 0), ("masks", 1)):
                (data / split / kind).mkdir(parents=True)
                for pair in chunk:
                    os.symlink(pair[index], data / split / kind / pair[index].name)
        exp = load_experiment(
            exp_path,
            [
                *overrides,
                f"data.root={data}",
                f"run_dir={Path(tmp) / 'run'}",
                f"train.epochs={EPOCHS}",
                "train.patience=1000",
                f"train.mixed_precision={POLICIES[precision]}",
                "augment.online=false",
            ],
        )
        return {"images_per_second": train(exp).images_per_second}


def plain_inference(exp, run_dir: Path, images: list[Path], output: Path, precision: str) -> dict:
    """Images/s of the whole job in plain Keras: build, load the weights, read, predict, write."""
    import cv2

    from flexseg.model.store import MODEL_FILE

    size = exp.image.width
    t0 = time.perf_counter()
    model = plain_model(exp, precision)
    model.load_weights(run_dir / MODEL_FILE)
    originals, batch = [], []
    for path in images:
        rgb = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        originals.append(rgb.shape[:2])
        batch.append(cv2.resize(rgb, (size, size), interpolation=cv2.INTER_LINEAR))
    probabilities = model.predict(np.stack(batch).astype(np.float32), batch_size=BATCH, verbose=0)
    output.mkdir()
    for path, (height, width), p in zip(images, originals, probabilities):
        labels = np.argmax(p, axis=-1).astype(np.uint8)
        cv2.imwrite(str(output / path.name), cv2.resize(labels, (width, height), interpolation=cv2.INTER_NEAREST))
    return {"images_per_second": len(images) / (time.perf_counter() - t0)}


def flexseg_inference(run_dir: Path, images: list[Path], output: Path, precision: str) -> dict:
    """Images/s of ``flexseg infer`` (the API call), the whole job: load, decode, predict, resize
    back, palette PNGs written."""
    from flexseg.commands.infer import infer

    t0 = time.perf_counter()
    result = infer(run_dir, images, output, batch_size=BATCH, precision=precision)
    return {"images_per_second": len(images) / (time.perf_counter() - t0), "precision": result.precision}


def one(task: str, side: str, precision: str, size: int, workdir: Path) -> dict:
    """Measure one side of one task in this process (``workdir``: the comparison's shared folder
    with the image links and the untrained run)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from flexseg import console
    from flexseg.tfenv import import_tensorflow_quietly

    import_tensorflow_quietly()
    console.configure(quiet=True)
    from inputs import NBM, nbm_pairs

    from flexseg.config import load_experiment

    overrides = [f"image.width={size}", f"image.height={size}"]
    with tempfile.TemporaryDirectory(prefix="flexseg-bench-peer-") as tmp:
        if task == "train":
            pairs = nbm_pairs(Path(tmp))
            if side == "plain":
                return plain_training(load_experiment(NBM, overrides), pairs, precision)
            return flexseg_training(NBM, overrides, pairs, precision)
        images = sorted((workdir / "images").iterdir())
        output = Path(tmp) / "masks"
        if side == "plain":
            return plain_inference(load_experiment(NBM, overrides), workdir / "run", images, output, precision)
        return flexseg_inference(workdir / "run", images, output, precision)


def prepare(workdir: Path, size: int, count: int) -> None:
    """The inference inputs: ``count`` links to nbm-mini's slices, and a run folder with the NBM
    experiment's untrained model (speed does not depend on the weights)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import speed
    from inputs import NBM, nbm_pairs

    from flexseg.config import load_experiment

    pairs = nbm_pairs(workdir / "scratch")
    (workdir / "images").mkdir()
    for i in range(count):
        source = pairs[i % len(pairs)][0]
        (workdir / "images" / f"{i:03d}_{source.name}").symlink_to(source)
    exp = load_experiment(NBM, [f"image.width={size}", f"image.height={size}", "train.mixed_precision=none"])
    speed.save_untrained_run(exp, workdir / "run")


def side(task: str, who: str, precision: str, size: int, workdir: Path) -> float:
    """One side's images/s, measured in a process of its own."""
    command = [sys.executable, __file__, "--one", task, who, precision, str(size), str(workdir)]
    done = subprocess.run(command, capture_output=True, text=True)  # noqa: S603 (our own script)
    if done.returncode != 0:
        raise RuntimeError(f"{task} {who} {precision} failed: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])["images_per_second"]


def compare(pairs: int, precisions: list[str], size: int, show=print, tasks: tuple[str, ...] = TASKS) -> dict:
    """For each precision and task, ``pairs`` pairs of processes (the order alternating); the
    median, lowest and highest of the pairs' ratios flexseg / plain, and every figure."""
    from flexseg.tfenv import import_tensorflow_quietly

    import_tensorflow_quietly()
    result: dict = {"pairs": pairs, "image_size": size, "train_images": TRAIN, "infer_images": INFER_IMAGES}
    with tempfile.TemporaryDirectory(prefix="flexseg-bench-peer-") as tmp:
        workdir = Path(tmp)
        prepare(workdir, size, INFER_IMAGES)
        for precision in precisions:
            for task in tasks:
                ratios, runs = [], {"flexseg": [], "plain": []}
                for i in range(pairs):
                    order = ("plain", "flexseg") if i % 2 == 0 else ("flexseg", "plain")
                    rate = {who: side(task, who, precision, size, workdir) for who in order}
                    for who in order:
                        runs[who].append(round(rate[who], 4))
                    ratios.append(rate["flexseg"] / rate["plain"])
                figures = {
                    "median_ratio": round(statistics.median(ratios), 3),
                    "lowest_ratio": round(min(ratios), 3),
                    "highest_ratio": round(max(ratios), 3),
                    "ratios": [round(r, 3) for r in ratios],
                    "images_per_second": runs,
                }
                result.setdefault(precision, {})[task] = figures
                show(
                    f"{task} {precision}: flexseg / plain Keras, {pairs} pairs",
                    f"{figures['median_ratio']:.2f}× median ({figures['lowest_ratio']:.2f}–"
                    f"{figures['highest_ratio']:.2f}); flexseg {statistics.median(runs['flexseg']):.3f}, "
                    f"plain {statistics.median(runs['plain']):.3f} img/s",
                )
    return result


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--one":
        task, who, precision, size, workdir = sys.argv[2:7]
        print(json.dumps(one(task, who, precision, int(size), Path(workdir))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--precisions", nargs="+", choices=list(POLICIES), default=list(POLICIES))
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    args = parser.parse_args()

    def show(label: str, value: str) -> None:
        print(f"  {label:<52} {value}", file=sys.stderr, flush=True)

    print(json.dumps(compare(args.pairs, args.precisions, args.size, show, tuple(args.tasks)), indent=1))


if __name__ == "__main__":
    main()
