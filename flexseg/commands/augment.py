"""flexseg augment: offline augmentation of a split with albumentations.

The experiment's ``augment.transforms`` is a list of albumentations transforms; image and
mask get the same geometric transform, and masks are transformed as class indices with
nearest-neighbour interpolation, so an augmented mask holds only class colours. Copy ``c``
of ``stem`` is written as ``<stem>__augCC.png`` beside the originals; its random state comes
from (seed, stem, c) alone, so the output does not depend on worker scheduling.
"""

from __future__ import annotations

import json
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from flexseg import console as out
from flexseg import settings
from flexseg.data.augmented import (
    AUGMENT_RECORD,
    augmented_name,
    existing_copies,
    source_stem,
)
from flexseg.errors import ConfigError, DataError
from flexseg.transforms import SeededPipeline

if TYPE_CHECKING:
    from flexseg.config import Experiment
    from flexseg.data.classes import ClassMap

# ---------------------------------------------------------------- running it


@dataclass
class AugmentResult:
    split_dir: Path
    sources: int
    written: int
    seconds: float

    @property
    def pairs_per_second(self) -> float:
        return self.written / self.seconds if self.seconds else 0.0


def copy_seed(seed: int, stem: str, copy: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([seed, zlib.crc32(stem.encode("utf-8")), copy])


class _PairAugmenter:
    """Writes the augmented copies of one pair."""

    def __init__(self, spec: list, class_map: ClassMap, copies: int, seed: int) -> None:
        self.pipeline, self.class_map, self.copies, self.seed = SeededPipeline(spec), class_map, copies, seed
        self.palette = class_map.palette()

    def __call__(self, pair: tuple[Path, Path], out_dir: Path) -> int:
        from flexseg.data.io import (
            read_image,
            read_mask,
            write_image,
            write_palette_mask,
        )

        image_path, mask_path = pair
        image = read_image(image_path, channels=None)
        indices = self.class_map.to_indices(read_mask(mask_path)).indices
        if image.shape[:2] != indices.shape:
            raise DataError(
                f"{image_path} {image.shape[1]}×{image.shape[0]} and its mask {mask_path} "
                f"{indices.shape[1]}×{indices.shape[0]} differ in size"
            )
        for c in range(1, self.copies + 1):
            augmented, mask = self.pipeline(image, indices, copy_seed(self.seed, image_path.stem, c))
            name = augmented_name(image_path.stem, c) + ".png"
            write_image(out_dir / "images" / name, augmented)
            write_palette_mask(out_dir / "masks" / name, mask, self.palette)
        return self.copies


def augment_all(exp: Experiment, split: str = "train", force: bool = False) -> list[AugmentResult]:
    """``augment`` the split, or with cross-validation folds (``split --folds``) every fold's."""
    from flexseg.data.folds import fold_experiment, fold_numbers

    folds = fold_numbers(exp.data.root) if getattr(exp.data, split) is None else []
    if not folds or (exp.data.split_dir(split) / "images").is_dir():
        return [augment(exp, split, force)]
    return [augment(fold_experiment(exp, k), split, force) for k in folds]


def augment(exp: Experiment, split: str = "train", force: bool = False, workers: int | None = None) -> AugmentResult:
    """Write ``augment.copies`` augmented copies of every original pair of ``split``."""
    from flexseg import runs
    from flexseg.data.classes import ClassMap
    from flexseg.data.pairing import split_pairs
    from flexseg.fsutil import atomic_write_text

    spec = exp.augment
    if spec.online:
        raise ConfigError(
            "augment.online is true: flexseg train transforms every training pair on the fly, and "
            "copies written as well would be augmented twice; set augment.online: false to write copies"
        )
    if split == "test":
        raise ConfigError(
            "flexseg augment refuses the test split: scores on augmented test data are not scores on your data"
        )
    split_dir = exp.data.split_dir(split)
    if split_dir.resolve() == exp.data.split_dir("test").resolve():
        raise ConfigError(f"{split_dir} is also the test split's folder; augmenting it would change the test data")
    if not spec.transforms:
        raise ConfigError(
            "augment.transforms is empty; list albumentations transforms in the experiment, e.g. "
            "augment: {copies: 2, transforms: [{HorizontalFlip: {p: 0.5}}, {RandomRotate90: {p: 1.0}}]}"
        )
    if not (split_dir / "images").is_dir():
        raise DataError(f"{split_dir}: no images/ folder; run flexseg split EXPERIMENT first, or set data.root")
    with runs.open_output(split_dir, "augment") as folder:
        if folder.finished_interrupted and not force:
            done = json.loads((split_dir / AUGMENT_RECORD).read_text(encoding="utf-8"))
            out.warn(f"{split_dir}: the interrupted augmentation had written all its copies; they are in place now")
            return AugmentResult(split_dir, done["sources"], done["written"], 0.0)
        old = existing_copies(split_dir)
        if old and not force:
            raise DataError(
                f"{split_dir} already holds {len(old)} augmented files (e.g. {old[0].name}); "
                "pass --force to replace them (they stay until the new copies are complete)"
            )
        if old and not folder.record.path.exists():  # copies of a flexseg from before the record: its names
            for path in old + [split_dir / AUGMENT_RECORD]:
                if path.exists():
                    folder.record.add(path.relative_to(split_dir).as_posix())
        pairs = [(i, m) for i, m in split_pairs(exp, split) if source_stem(i.stem) is None]
        augment_pair = _PairAugmenter(spec.transforms, ClassMap.from_experiment(exp), spec.copies, spec.seed)
        t0 = time.perf_counter()
        written = 0
        # the copies are written into the staging folder and put in place together, when all exist
        with (
            runs.staged(folder) as staging,
            out.progress_bar(f"augment {split}", len(pairs) * spec.copies) as bar,
            ThreadPoolExecutor(workers or settings.workers()) as pool,
        ):
            for n in pool.map(lambda pair: augment_pair(pair, staging), pairs):
                written += n
                bar.advance(n)
            seconds = time.perf_counter() - t0
            atomic_write_text(
                staging / AUGMENT_RECORD,
                json.dumps(
                    {
                        "split": split,
                        "sources": len(pairs),
                        "copies": spec.copies,
                        "written": written,
                        "seed": spec.seed,
                        "transforms": spec.transforms,
                        "seconds": round(seconds, 2),
                    },
                    indent=1,
                ),
            )
            runs.promote(folder)
    return AugmentResult(split_dir, len(pairs), written, seconds)
