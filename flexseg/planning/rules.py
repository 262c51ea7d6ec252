"""The rules that turn a fingerprint into an experiment, each giving its value and its reason.

Every rule is a plain function of the fingerprint (and, for the budget, of a measured cost of a
training step), so each is tested on small synthetic fingerprints. The reasons become the
comments of the planned YAML file.

- classes: the colours found in the masks (background first), named class_1, class_2 …
- channels: 1 when every image is grey, else 3
- intensity: CT volumes: a window over the foreground's 0.5–99.5 percentiles of HU (nnU-Net's CT
  clipping); DICOM slices with a display window in every header: that window (`header`); MR and
  other volumes: per-volume 0.5–99.5 percentiles; PNG/JPEG: the pixels as they are
- size: the median image size, at most MAX_SIZE on its long side, to a multiple of 2^(depth−1)
- depth: levels until the bottleneck is about 4–8 pixels on the short side
- filters: base_filters·2^level, capped at MAX_FILTERS
- loss: CE+Dice when the smallest foreground class covers less than SMALL_FOREGROUND of the pixels
- folds: a 5-fold cross-validation when there are at most SMALL_DATA samples and enough groups
- augmentation copies: more for fewer training images
- budget: the largest size and filters whose measured training fits the budget with at least
  MIN_STEPS optimiser steps per model; epochs fill the budget (at most MAX_EPOCHS)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flexseg.config import PERCENTILES

if TYPE_CHECKING:
    from collections.abc import Callable

    from flexseg.planning.fingerprint import Fingerprint

MAX_SIZE = 512  # long side; larger images are resized down (a CPU trains 512² models for days)
MIN_SIZE = 128  # the budget never shrinks images below this (nor below their own size)
BOTTLENECK = 8  # pixels on the short side at the deepest level: at most this, more than half of it
MAX_LAYERS = 8
MAX_FILTERS = 256
BASE_FILTERS = (16, 8)  # tried in this order
SMALL_FOREGROUND = 0.2
SMALL_DATA = 1000  # samples: up to this, a cross-validation is affordable and worth it
FOLDS = 5
TRAIN_SHARE = 0.8  # of the budget; the rest: split, augment, evaluate, process starts
FOLD_OVERHEAD_S = 20.0  # per model: building, tracing, saving, the epoch-change pictures
EPOCH_OVERHEAD_S = 0.5  # per epoch: checkpoint, history, callbacks
MIN_STEPS = 400  # optimiser steps per model below which a smaller model is preferred
MIN_EPOCHS = 10
MAX_EPOCHS = 200
DEFAULT_BUDGET_S = 3600.0  # flexseg plan --budget default: one hour for split, augment, train, evaluate
CLASS_COLORS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255)]


@dataclass
class Choice:
    value: object
    why: str


@dataclass
class BudgetFit:
    """What the budget rule chose, the cost it was measured at, and the time it expects."""

    width: int
    height: int
    layers: int
    base_filters: int
    batch_size: int
    epochs: int
    step_seconds: float
    steps_per_epoch: int
    expected_seconds: float
    fits: bool
    why: str
    tried: list[str] = field(default_factory=list)


def classes(fp: Fingerprint) -> Choice:
    """[{name, color}] with the background first."""
    if fp.kind == "volumes":
        labels = fp.classes["labels"]
        count = max(labels) + 1
        colors = [(0, 0, 0)] + [CLASS_COLORS[(i - 1) % len(CLASS_COLORS)] for i in range(1, count)]
        if count > len(CLASS_COLORS) + 1:  # distinct colours beyond the six: a grey ramp
            colors = [(0, 0, 0)] + [(i * 255 // count,) * 3 for i in range(1, count)]
        gaps = sorted(set(range(count)) - set(labels))
        why = f"labels {_list(labels)} in the label volumes: label i is class i"
        if gaps:
            why += f" (labels {_list(gaps)} are absent from the {fp.classes['volumes_read']} volumes read)"
    else:
        colors = [tuple(c) for c in fp.classes["colors"]]
        c = fp.classes
        if c["distinct_colors"] == len(colors):
            why = f"the {c['masks_read']} masks read hold exactly these {len(colors)} colours"
        else:
            why = (
                f"{len(colors)} colours stand out of the {c['distinct_colors']} in {c['masks_read']} masks "
                f"(the rest: JPEG damage or edges; {c['far_pixels']:,} of {c['total_pixels']:,} pixels lie "
                f"further than {c['tolerance']:g} from every class colour)"
            )
    named = [{"name": "background", "color": list(colors[0])}] + [
        {"name": f"class_{i}", "color": list(col)} for i, col in enumerate(colors[1:], 1)
    ]
    return Choice(named, why + "; the first is the background. Rename the classes")


def channels(fp: Fingerprint) -> Choice:
    if fp.channels == 1:
        return Choice(1, "every image read is grey (its channels are equal)")
    return Choice(3, "the images are in colour")


def intensity(fp: Fingerprint) -> Choice:
    """The ``volume`` section (None: nothing to map)."""
    fg = fp.intensity.get("foreground_percentiles")
    if fp.kind == "volumes" and fp.modality == "CT" and fg:
        lo, hi = fg["p0.5"], fg["p99.5"]
        center, width = round((lo + hi) / 2, 1), round(max(hi - lo, 1.0), 1)
        return Choice(
            {"window": [center, width]},
            f"CT (HU): the foreground lies in {lo:g}..{hi:g} HU (0.5–99.5 percentiles of {fg['voxels']:,} voxels); "
            "the window keeps that range, as nnU-Net clips CT",
        )
    if fp.kind == "volumes":
        return Choice(
            {"percentiles": list(PERCENTILES)},
            f"{fp.modality}: no fixed scale, so each volume by its {PERCENTILES[0]:g}–{PERCENTILES[1]:g} percentiles",
        )
    if fp.kind == "dicom":
        windows = fp.intensity.get("header_windows", [])
        if windows and not any(w.get("none") for w in windows):
            return Choice(
                {"window": "header"},
                f"every DICOM header read has a display window ({len(windows)} distinct); the slices are mapped "
                "by it, and it is recorded with the model so a NIfTI of the series maps the same",
            )
        return Choice(None, "not every DICOM header has a display window: each slice by its 0.5–99.5 percentiles")
    return Choice(None, "8-bit images: the pixels as they are")


def depth(short_side: int) -> int:
    """Levels until the short side is at most BOTTLENECK pixels at the deepest one."""
    return max(2, min(MAX_LAYERS, 1 + math.ceil(math.log2(max(short_side, 2) / BOTTLENECK))))


def sizes(fp: Fingerprint) -> list[tuple[int, int, int]]:
    """Candidate (width, height, layers), largest first: the median size (long side at most
    MAX_SIZE), then halved while not below MIN_SIZE (nor the images' own size)."""
    w, h = fp.size["median"]
    scale = min(1.0, MAX_SIZE / max(w, h))
    w, h = w * scale, h * scale
    floor = min(MIN_SIZE, max(w, h))
    out = []
    while True:
        layers = depth(int(min(w, h)))
        step = 2 ** (layers - 1)
        size = (max(step, round(w / step) * step), max(step, round(h / step) * step), layers)
        if size not in out:
            out.append(size)
        if max(w, h) / 2 < floor:
            return out
        w, h = w / 2, h / 2


def loss(fp: Fingerprint) -> Choice:
    shares = fp.classes["pixel_shares"][1:]
    smallest = min(shares) if shares else 0.0
    if smallest < SMALL_FOREGROUND:
        return Choice(
            "ce+dice",
            f"the smallest foreground class covers {smallest:.1%} of the pixels: the Dice term keeps it from being "
            "ignored",
        )
    return Choice("categorical_crossentropy", f"every foreground class covers at least {smallest:.0%} of the pixels")


def split(fp: Fingerprint) -> Choice:
    """The ``split`` keys for groups, ratios and folds."""
    groups = fp.groups
    keys: dict = {}
    if groups["how"] == "file name":
        keys["group_pattern"] = groups["pattern"]
        how = f"{groups['count']} groups (patients) from the file names: no group spans two splits"
    elif groups["how"] == "PatientID":
        how = f"{groups['count']} patients (DICOM PatientID, in the groups CSV): no patient spans two splits"
    else:
        how = "each " + ("volume" if fp.kind == "volumes" else "file") + " is its own group"
        if groups.get("note"):
            how += (
                f" ({groups['note']}): held-out slices may share a patient with training ones, so their scores "
                "run higher than on a new patient's"
            )
    n_groups = groups["count"]
    test = 0.15 if fp.samples < 100 else 0.1
    if fp.samples <= SMALL_DATA and n_groups >= FOLDS + 1:
        keys.update(ratios={"train": 1 - test, "valid": 0.0, "test": test}, folds=FOLDS)
        why = (
            f"{fp.samples} samples: small, so a {FOLDS}-fold cross-validation trains {FOLDS} models on {1 - test:.0%} "
            f"of the groups (each validated on the fold it did not see) and ensembles them; {test:.0%} stay aside "
            f"as the test split; {how}"
        )
    elif fp.samples <= SMALL_DATA:
        keys["ratios"] = {"train": 0.7, "valid": 0.2, "test": 0.1}
        why = f"{n_groups} groups are too few for {FOLDS} folds: one split 70/20/10; {how}"
    else:
        keys["ratios"] = {"train": 0.8, "valid": 0.1, "test": 0.1}
        why = f"{fp.samples} samples: enough for one model; one split 80/10/10; {how}"
    return Choice(keys, why)


def train_samples(fp: Fingerprint, split_keys: dict) -> tuple[int, int]:
    """(training samples per model, validation samples per model) under ``split_keys``."""
    ratios = split_keys["ratios"]
    rest = fp.samples * (1 - ratios["test"])
    if split_keys.get("folds"):
        k = split_keys["folds"]
        return max(1, round(rest * (k - 1) / k)), max(1, round(rest / k))
    return max(1, round(fp.samples * ratios["train"])), max(1, round(fp.samples * ratios["valid"]))


def copies(n_train: int) -> Choice:
    n = 4 if n_train < 100 else 2 if n_train < 500 else 1
    return Choice(n, f"{n_train} training samples per model: {n} augmented copies of each")


def fit_budget(
    fp: Fingerprint, budget_s: float, models: int, n_train: int, n_valid: int, copies_: int, cost: Callable
) -> BudgetFit:
    """The largest model that trains ``models`` times within ``budget_s`` with at least MIN_STEPS
    steps each: sizes from ``sizes(fp)`` × BASE_FILTERS, largest first; ``cost(size_w, size_h,
    base_filters, batch, layers)`` gives the measured seconds of one training step. Epochs fill the
    training share of the budget (at most MAX_EPOCHS). When nothing fits, the smallest model with
    the epochs that fit, and ``fits`` False."""
    available = budget_s * TRAIN_SHARE / models - FOLD_OVERHEAD_S

    def epoch_seconds(step: float, batch: int) -> float:  # training steps, validation (forward only), callbacks
        return math.ceil(samples / batch) * step + math.ceil(n_valid / batch) * step / 3 + EPOCH_OVERHEAD_S

    samples = n_train * (1 + copies_)
    tried, fit = [], None
    for w, h, layers in sizes(fp):
        for base in BASE_FILTERS:
            batch = min(4 if w * h >= 256 * 256 else 8, samples)  # never more than an epoch holds
            step = cost(w, h, base, batch, layers)
            steps = math.ceil(samples / batch)
            epoch = epoch_seconds(step, batch)
            epochs = int(min(MAX_EPOCHS, max(0.0, available) // epoch))
            tried.append(
                f"{w}×{h} base {base}, batch {batch}: {step:.2f} s a step, {epoch:.0f} s an epoch → {epochs} epochs"
            )
            fit = BudgetFit(w, h, layers, base, batch, epochs, step, steps, 0.0, True, "", tried)
            if epochs >= MIN_EPOCHS and epochs * steps >= MIN_STEPS:
                break
        else:
            continue
        break
    # the batch: twice as large when that trains a sample clearly faster on this machine (and an
    # epoch still holds two steps)
    double = (
        cost(fit.width, fit.height, fit.base_filters, fit.batch_size * 2, fit.layers)
        if samples >= 4 * fit.batch_size
        else math.inf
    )
    if math.isfinite(double):
        tried.append(f"batch {fit.batch_size * 2}: {double:.2f} s a step")
    if double / (fit.batch_size * 2) < 0.85 * fit.step_seconds / fit.batch_size:
        fit.batch_size *= 2
        fit.step_seconds = double
        fit.steps_per_epoch = math.ceil(samples / fit.batch_size)
        epoch = epoch_seconds(double, fit.batch_size)
        fit.epochs = int(min(MAX_EPOCHS, max(0.0, available) // epoch))
    fit.fits = fit.epochs >= MIN_EPOCHS and fit.epochs * fit.steps_per_epoch >= MIN_STEPS
    fit.epochs = max(fit.epochs, 1)
    epoch = epoch_seconds(fit.step_seconds, fit.batch_size)
    fit.expected_seconds = models * (FOLD_OVERHEAD_S + fit.epochs * epoch) / TRAIN_SHARE
    per = f"{models} models × " if models > 1 else ""
    fit.why = (
        f"measured here: {fit.step_seconds:.2f} s a training step at {fit.width}×{fit.height}, batch {fit.batch_size}; "
        f"{per}{fit.epochs} epochs of {fit.steps_per_epoch} steps fill {budget_s / 60:.0f} min "
        f"(expected about {fit.expected_seconds / 60:.0f} min end to end)"
    )
    if not fit.fits:
        fit.why += f". The budget is too small for {MIN_STEPS} steps a model even at the smallest size: raise --budget"
    return fit


def _list(values: list) -> str:
    return ", ".join(str(v) for v in values)
