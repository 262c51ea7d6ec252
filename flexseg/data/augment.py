"""flexseg augment: offline augmentation of a split with albumentations.

The experiment's ``augment.transforms`` is a list of albumentations transforms; image and
mask get the same geometric transform, and masks are transformed as class indices with
nearest-neighbour interpolation, so an augmented mask holds only class colours. Copy ``c``
of ``stem`` is written as ``<stem>__augCC.png`` beside the originals; its random state comes
from (seed, stem, c) alone, so the output does not depend on worker scheduling.
"""

from __future__ import annotations

import functools
import inspect
import json
import re
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flexseg import console as out
from flexseg.errors import ConfigError, DataError, excerpt

AUGMENT_RECORD = "augment.json"
AUGMENTED = re.compile(r"^(?P<source>.+)__aug(?P<copy>\d+)$")  # stem of an augmented copy
CONTAINERS = ("OneOf", "SomeOf", "Sequential")
# transforms that need inputs flexseg does not give (boxes, reference images, 3D, callables)
UNSUPPORTED = {
    "Lambda", "Normalize", "ToFloat", "FromFloat", "Mosaic", "OverlayElements", "TextImage", "FDA",
    "HistogramMatching", "PixelDistributionAdaptation", "RandomCropNearBBox", "BBoxSafeRandomCrop",
    "RandomSizedBBoxSafeCrop", "AtLeastOneBBoxRandomCrop", "MaskDropout",
}


def augmented_name(stem: str, copy: int) -> str:
    return f"{stem}__aug{copy:02d}"


def source_stem(stem: str) -> str | None:
    """The stem an augmented copy was made from, or None for an original."""
    m = AUGMENTED.match(stem)
    return m.group("source") if m else None


# ---------------------------------------------------------------- the transform list


def _albumentations():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its version check wants the network
        import albumentations

    return albumentations


@functools.cache
def available_transforms() -> list[str]:
    A = _albumentations()
    return sorted(
        name for name in dir(A)
        if isinstance(getattr(A, name), type) and issubclass(getattr(A, name), (A.DualTransform, A.ImageOnlyTransform))
        and name not in ("DualTransform", "ImageOnlyTransform") and name not in UNSUPPORTED and not name.endswith("3D")
    )


def build_pipeline(spec: list):
    """An albumentations Compose from ``augment.transforms``; a ValueError names the bad
    transform or argument and the valid ones."""
    A = _albumentations()
    return A.Compose([_build(item, f"augment.transforms[{i}]", A) for i, item in enumerate(spec)])


def _build(item, where: str, A):
    import difflib

    if isinstance(item, str):
        name, args = item, {}
    elif isinstance(item, dict) and len(item) == 1:
        (name, args), = item.items()
        args = {} if args is None else args
        if not isinstance(args, dict):
            raise ValueError(f"{where}: the arguments of {name} must be a mapping such as {{p: 0.5}} (got {excerpt(args, 120)})")
    else:
        raise ValueError(f"{where}: write a transform as a name or as {{Name: {{argument: value}}}}, e.g. {{HorizontalFlip: {{p: 0.5}}}}")
    valid = available_transforms()
    if name in CONTAINERS:
        inner = args.get("transforms")
        if not isinstance(inner, list) or not inner:
            raise ValueError(f"{where}: {name} needs transforms: [a list of transforms]")
        built = [_build(x, f"{where}.{name}.transforms[{j}]", A) for j, x in enumerate(inner)]
        return _construct(getattr(A, name), name, where, {**args, "transforms": built})
    if name not in valid:
        close = difflib.get_close_matches(name, valid + list(CONTAINERS), n=3)
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        raise ValueError(f"{where}: unknown albumentations transform {name!r}; {hint}valid: {', '.join(valid + list(CONTAINERS))}")
    if args.get("mask_interpolation", 0) != 0:
        raise ValueError(f"{where}: {name}.mask_interpolation must stay 0 (nearest): masks hold class indices")
    return _construct(getattr(A, name), name, where, args)


def _construct(cls, name: str, where: str, args: dict):
    import difflib

    accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "args", "kwargs")]
    for key in args:
        if key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise ValueError(f"{where}: {name} has no argument {key!r}; {hint}its arguments: {', '.join(accepted)}")
    try:
        return cls(**args)
    except (ValueError, TypeError) as e:
        text = " ".join(str(e).split())
        shown = ", ".join(f"{k}={excerpt(v, 120)}" for k, v in args.items())
        raise ValueError(f"{where}: {name}({shown}) is not valid: {text[:400]}") from None


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


def seed_pipeline(transform, seq: np.random.SeedSequence) -> None:
    """Give every transform in the tree its own random stream.

    ``Compose.set_random_seed`` hands the same seed to every child, so the "apply with
    probability p" draws of all children coincide: every p=0.5 transform fires together or
    not at all. Spawned seed sequences keep them independent.
    """
    transform.set_random_seed(int(seq.generate_state(1)[0]))
    children = getattr(transform, "transforms", None) or []
    for child, child_seq in zip(children, seq.spawn(len(children))):
        seed_pipeline(child, child_seq)


class SeededPipeline:
    """The experiment's transforms as one albumentations pipeline per thread (a pipeline carries
    its random state), reseeded on every call, so the result depends on the seed only, not on
    which thread runs it. Used by ``flexseg augment`` and by online augmentation in training.

    Threads, not processes: OpenCV and NumPy do the work and release the GIL, and a process
    pool would have to spawn (TensorFlow does not survive a fork) and re-import everything.
    """

    def __init__(self, spec: list):
        self.spec = spec
        self._local = threading.local()

    def __call__(self, image: np.ndarray, indices: np.ndarray, seed: np.random.SeedSequence):
        if not hasattr(self._local, "pipeline"):
            self._local.pipeline = build_pipeline(self.spec)
        pipeline = self._local.pipeline
        seed_pipeline(pipeline, seed)
        result = pipeline(image=image, mask=indices)
        return result["image"], result["mask"]


class _PairAugmenter:
    """Writes the augmented copies of one pair."""

    def __init__(self, spec: list, class_map, copies: int, seed: int):
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
            raise DataError(f"{image_path} {image.shape[1]}×{image.shape[0]} and its mask {mask_path} "
                            f"{indices.shape[1]}×{indices.shape[0]} differ in size")
        for c in range(1, self.copies + 1):
            augmented, mask = self.pipeline(image, indices, copy_seed(self.seed, image_path.stem, c))
            name = augmented_name(image_path.stem, c) + ".png"
            write_image(out_dir / "images" / name, augmented)
            write_palette_mask(out_dir / "masks" / name, mask, self.palette)
        return self.copies


def existing_copies(split_dir: Path) -> list[Path]:
    return sorted(p for kind in ("images", "masks") if (split_dir / kind).is_dir()
                  for p in (split_dir / kind).iterdir() if source_stem(p.stem) is not None)


def augment(exp, split: str = "train", force: bool = False, workers: int = 2) -> AugmentResult:
    """Write ``augment.copies`` augmented copies of every original pair of ``split``."""
    from flexseg import runs
    from flexseg.data.classes import ClassMap
    from flexseg.data.pairing import split_pairs
    from flexseg.fsutil import atomic_write_text

    spec = exp.augment
    if spec.online:
        raise ConfigError("augment.online is true: flexseg train transforms every training pair on the fly, and "
                          "copies written as well would be augmented twice; set augment.online: false to write copies")
    if split == "test":
        raise ConfigError("flexseg augment refuses the test split: scores on augmented test data are not scores on your data")
    split_dir = exp.data.split_dir(split)
    if split_dir.resolve() == exp.data.split_dir("test").resolve():
        raise ConfigError(f"{split_dir} is also the test split's folder; augmenting it would change the test data")
    if not spec.transforms:
        raise ConfigError("augment.transforms is empty; list albumentations transforms in the experiment, e.g. "
                          "augment: {copies: 2, transforms: [{HorizontalFlip: {p: 0.5}}, {RandomRotate90: {p: 1.0}}]}")
    if not (split_dir / "images").is_dir():
        raise DataError(f"{split_dir}: no images/ folder; run flexseg split EXPERIMENT first, or set data.root")
    with runs.open_output(split_dir, "augment") as folder:
        if folder.finished_interrupted and not force:
            done = json.loads((split_dir / AUGMENT_RECORD).read_text(encoding="utf-8"))
            out.warn(f"{split_dir}: the interrupted augmentation had written all its copies; they are in place now")
            return AugmentResult(split_dir, done["sources"], done["written"], 0.0)
        old = existing_copies(split_dir)
        if old and not force:
            raise DataError(f"{split_dir} already holds {len(old)} augmented files (e.g. {old[0].name}); "
                            "pass --force to replace them (they stay until the new copies are complete)")
        if old and not folder.record.path.exists():  # copies of a flexseg from before the record: its names
            for path in old + [split_dir / AUGMENT_RECORD]:
                if path.exists():
                    folder.record.add(path.relative_to(split_dir).as_posix())
        pairs = [(i, m) for i, m in split_pairs(exp, split) if source_stem(i.stem) is None]
        augment_pair = _PairAugmenter(spec.transforms, ClassMap.from_experiment(exp), spec.copies, spec.seed)
        t0 = time.perf_counter()
        written = 0
        # the copies are written into the staging folder and put in place together, when all exist
        with runs.staged(folder) as staging, out.progress_bar(f"augment {split}", len(pairs) * spec.copies) as bar, \
                ThreadPoolExecutor(max(1, workers)) as pool:
            for n in pool.map(lambda pair: augment_pair(pair, staging), pairs):
                written += n
                bar.advance(n)
            seconds = time.perf_counter() - t0
            atomic_write_text(staging / AUGMENT_RECORD, json.dumps({
                "split": split, "sources": len(pairs), "copies": spec.copies, "written": written, "seed": spec.seed,
                "transforms": spec.transforms, "seconds": round(seconds, 2),
            }, indent=1))
            runs.promote(folder)
    return AugmentResult(split_dir, len(pairs), written, seconds)
