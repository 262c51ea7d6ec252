"""The plain-Keras peer: the same FlexUNet trained and used the way the Keras guides show it, on
arrays decoded up front, with none of flexseg's code paths (no tf.data pipeline, callbacks, run
folder, checks or mask writing). bench/run.py runs it beside flexseg in the same benchmark run, so
the ratio flexseg / plain holds on any host.

Training is measured one side per process, alternating (plain, flexseg, flexseg, plain):

    .venv/bin/python bench/peer.py train plain|flexseg [--epochs 3] [--set KEY=VALUE ...]

prints one JSON line. The 2-core hosts change speed under a running process: one plain-Keras
NBM training at 512×512 ran its epochs at 2.22, 1.72, 2.21, 2.26, 2.29, 2.25 and 1.63 s an image,
two speeds 35% apart, with no change in the work. One run a side decides nothing, so bench/run.py
runs two a side, and gives the ratio of the means and that of each side's faster run (the host
only ever slows a run down).

The model is built by flexseg's ``build_flexunet`` so that both sides run the very same layers;
everything around it is plain Keras.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

TRAIN, VALID = 18, 6  # the small epochs: 18 train and 6 valid NBM images


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


def plain_model(exp):
    import keras

    from flexseg.model.flexunet import build_from_experiment

    keras.utils.set_random_seed(exp.train.seed)
    keras.config.set_dtype_policy("float32")
    return build_from_experiment(exp)


def plain_training(exp, pairs: list[tuple[Path, Path]], epochs: int) -> dict:
    """Images/s of ``model.fit`` on arrays with validation, over epochs 2..``epochs`` (the first
    traces the graph), and of the whole run (decode, build, compile, fit)."""
    import keras

    class EpochEnds(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.ends: list[float] = []

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.ends.append(time.perf_counter())

    t0 = time.perf_counter()
    x, y = decode(pairs[: TRAIN + VALID], exp.image.width)
    model = plain_model(exp)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=exp.train.learning_rate, clipvalue=exp.train.clipvalue),
        loss="categorical_crossentropy",
    )
    ends = EpochEnds()
    model.fit(
        x[:TRAIN],
        y[:TRAIN],
        batch_size=exp.train.batch_size,
        epochs=epochs,
        validation_data=(x[TRAIN:], y[TRAIN:]),
        callbacks=[ends],
        verbose=0,
    )
    whole = time.perf_counter() - t0
    return {
        "images_per_second": TRAIN * (epochs - 1) / (ends.ends[-1] - ends.ends[0]),
        "whole_run_images_per_second": TRAIN * epochs / whole,
        "epochs": epochs,
    }


def flexseg_training(exp_path: Path, overrides: list[str], pairs: list[tuple[Path, Path]], epochs: int) -> dict:
    """The same as ``flexseg train``: its images/s over epochs 2..``epochs`` (validation, callbacks,
    checkpoints and history included) and over the whole call (checks, build, the run folder)."""
    import os

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
                f"train.epochs={epochs}",
                "train.patience=1000",
                "train.mixed_precision=none",
                "augment.online=false",
            ],
        )
        t0 = time.perf_counter()
        result = train(exp)
        whole = time.perf_counter() - t0
    return {
        "images_per_second": result.images_per_second,
        "whole_run_images_per_second": TRAIN * epochs / whole,
        "epochs": epochs,
    }


def main() -> None:
    import argparse
    import json
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from inputs import NBM, nbm_pairs

    parser = argparse.ArgumentParser(description="one side of the training comparison, as a JSON line")
    parser.add_argument("what", choices=["train"])
    parser.add_argument("side", choices=["plain", "flexseg"])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()

    from flexseg import console
    from flexseg.tfenv import import_tensorflow_quietly

    import_tensorflow_quietly()
    console.configure(quiet=True)
    from flexseg.config import load_experiment

    float32 = [*args.overrides, "train.mixed_precision=none"]
    with tempfile.TemporaryDirectory(prefix="flexseg-bench-peer-") as tmp:
        pairs = nbm_pairs(Path(tmp))
        if args.side == "plain":
            result = plain_training(load_experiment(NBM, float32), pairs, args.epochs)
        else:
            result = flexseg_training(NBM, float32, pairs, args.epochs)
    print(json.dumps(result))


def plain_inference(exp, images: list[Path], batch_size: int = 4) -> dict:
    """Images/s of one ``model.predict`` over the decoded images (its first call's tracing included)."""
    x, _ = decode([(p, p) for p in images], exp.image.width)
    model = plain_model(exp)
    t0 = time.perf_counter()
    model.predict(x, batch_size=batch_size, verbose=0)
    return {"images_per_second": len(images) / (time.perf_counter() - t0), "images": len(images)}


def flexseg_inference(run_dir: Path, images: list[Path], precision: str, batch_size: int = 4) -> dict:
    """``flexseg infer`` over the image files, the whole call: model load, decode, predict, resize
    back and palette PNGs written."""
    from flexseg.commands.infer import infer

    with tempfile.TemporaryDirectory(prefix="flexseg-bench-peer-infer-") as tmp:
        t0 = time.perf_counter()
        result = infer(run_dir, images, Path(tmp) / "masks", batch_size=batch_size, precision=precision)
        whole = time.perf_counter() - t0
    return {"images_per_second": len(images) / whole, "images": len(images), "precision": result.precision}


if __name__ == "__main__":
    main()
