"""The experiment's albumentations transforms: built and checked from ``augment.transforms``, and
run seeded, so a result depends on the seed only. Used by the schema (to check the list), by
``flexseg augment`` (offline copies) and by the training input pipeline (online augmentation)."""

from __future__ import annotations

import functools
import inspect
import threading
from typing import TYPE_CHECKING

import numpy as np

from flexseg.errors import excerpt

if TYPE_CHECKING:
    from types import ModuleType

    import albumentations as A

CONTAINERS = ("OneOf", "SomeOf", "Sequential")
# transforms that need inputs flexseg does not give (boxes, reference images, 3D, callables)
UNSUPPORTED = {
    "Lambda",
    "Normalize",
    "ToFloat",
    "FromFloat",
    "Mosaic",
    "OverlayElements",
    "TextImage",
    "FDA",
    "HistogramMatching",
    "PixelDistributionAdaptation",
    "RandomCropNearBBox",
    "BBoxSafeRandomCrop",
    "RandomSizedBBoxSafeCrop",
    "AtLeastOneBBoxRandomCrop",
    "MaskDropout",
}


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
        name
        for name in dir(A)
        if isinstance(getattr(A, name), type)
        and issubclass(getattr(A, name), (A.DualTransform, A.ImageOnlyTransform))
        and name not in ("DualTransform", "ImageOnlyTransform")
        and name not in UNSUPPORTED
        and not name.endswith("3D")
    )


def build_pipeline(spec: list) -> A.Compose:
    """An albumentations Compose from ``augment.transforms``; a ValueError names the bad
    transform or argument and the valid ones."""
    A = _albumentations()
    return A.Compose([_build(item, f"augment.transforms[{i}]", A) for i, item in enumerate(spec)])


def _build(item: object, where: str, A: ModuleType):
    import difflib

    if isinstance(item, str):
        name, args = item, {}
    elif isinstance(item, dict) and len(item) == 1:
        ((name, args),) = item.items()
        args = {} if args is None else args
        if not isinstance(args, dict):
            raise ValueError(
                f"{where}: the arguments of {name} must be a mapping such as {{p: 0.5}} (got {excerpt(args, 120)})"
            )
    else:
        raise ValueError(
            f"{where}: write a transform as a name or as "
            f"{{Name: {{argument: value}}}}, e.g. {{HorizontalFlip: {{p: 0.5}}}}"
        )
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
        raise ValueError(
            f"{where}: unknown albumentations transform {name!r}; {hint}valid: {', '.join(valid + list(CONTAINERS))}"
        )
    if args.get("mask_interpolation", 0) != 0:
        raise ValueError(f"{where}: {name}.mask_interpolation must stay 0 (nearest): masks hold class indices")
    return _construct(getattr(A, name), name, where, args)


def _construct(cls: type, name: str, where: str, args: dict):
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


def seed_pipeline(transform: object, seq: np.random.SeedSequence) -> None:
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

    def __init__(self, spec: list) -> None:
        self.spec = spec
        self._local = threading.local()

    def __call__(
        self, image: np.ndarray, indices: np.ndarray, seed: np.random.SeedSequence
    ) -> tuple[np.ndarray, np.ndarray]:
        if not hasattr(self._local, "pipeline"):
            self._local.pipeline = build_pipeline(self.spec)
        pipeline = self._local.pipeline
        seed_pipeline(pipeline, seed)
        result = pipeline(image=image, mask=indices)
        return result["image"], result["mask"]
