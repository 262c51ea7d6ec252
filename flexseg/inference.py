"""flexseg infer: batched prediction over a folder, masks written at each input's original size."""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flexseg import console as out
from flexseg.data.io import list_images, resize, write_palette_mask
from flexseg.errors import DataError, RunError
from flexseg.model.store import ModelCard, load_model, read_card

DEFAULT_OUTPUT = "mini_test_output"  # the seed's name, inside the run folder


@dataclass
class InferResult:
    model_dir: Path
    output_dir: Path
    images: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.images / max(self.seconds, 1e-9)


def resolve_output(output: Path | None, model_dir: Path, images: Path | None, exp=None) -> Path:
    """Where masks go: --output; else, for the experiment's own infer.images, its infer.output or
    <run>/mini_test_output; else <run>/infer/<name of the images folder>."""
    if output is not None:
        return output
    own_images = exp is not None and (images is None or images == exp.infer.images)
    if own_images:
        return exp.infer.output or model_dir / DEFAULT_OUTPUT
    if images is None:
        return model_dir / DEFAULT_OUTPUT
    return model_dir / "infer" / images.resolve().name


def mask_name(image: Path) -> str:
    return image.stem + ".png"


def check_output(output_dir: Path, images: list[Path], force: bool) -> None:
    names = [mask_name(p) for p in images]
    clashes = [n for n in names if (output_dir / n).exists()]
    if clashes and not force:
        raise RunError(
            f"{output_dir} already holds {len(clashes)} of the masks this would write (e.g. {clashes[0]!r}); "
            "pass --force to overwrite them, or choose --output DIR"
        )
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise DataError(f"images {dupes[:3]} would write masks of the same name; rename them (e.g. a.png and a.jpg)")


def infer(
    model_dir: Path,
    images_dir: Path,
    output_dir: Path,
    *,
    batch_size: int = 4,
    force: bool = False,
) -> InferResult:
    from flexseg.data.pipeline import image_dataset

    card: ModelCard = read_card(model_dir)
    images = list_images(images_dir)
    if not images:
        raise DataError(f"{images_dir}: no images (png, jpg, tif, bmp) to infer")
    check_output(output_dir, images, force)
    model = load_model(model_dir)
    palette = card.class_map().palette()
    output_dir.mkdir(parents=True, exist_ok=True)
    ds = image_dataset(images, width=card.width, height=card.height, channels=card.channels, batch_size=batch_size)

    def write(index: int, probs: np.ndarray, size: np.ndarray) -> None:
        # resize the probabilities, not the labels, so edges follow the soft boundary
        full = resize(probs, int(size[1]), int(size[0]))
        write_palette_mask(output_dir / mask_name(images[index]), full.argmax(-1), palette)

    t0 = time.perf_counter()
    with out.progress_bar("infer", len(images)) as bar, ThreadPoolExecutor(1) as writer:
        pending: deque = deque()
        for batch, sizes, indices in ds:
            probs = np.asarray(model.predict_on_batch(batch))
            for p, s, i in zip(probs, sizes.numpy(), indices.numpy()):
                pending.append(writer.submit(write, int(i), p, s))
            while len(pending) > 2 * batch_size:  # bounded, so memory stays flat on big folders
                pending.popleft().result()
            bar.advance(len(indices))
        while pending:
            pending.popleft().result()
    seconds = time.perf_counter() - t0
    return InferResult(model_dir=model_dir, output_dir=output_dir, images=len(images), seconds=seconds)


def resolve_images(images: Path | None, experiment_images: Path | None) -> Path:
    folder = images or experiment_images
    if folder is None:
        raise DataError("no images to infer: pass --images DIR (or set infer.images in the experiment)")
    if not folder.is_dir():
        raise DataError(f"{folder}: images folder not found")
    return folder
