"""flexseg evaluate: score a trained model on the test split, per image and per class, in numpy.

Rule for empty masks: a class absent from both the truth and the prediction of an image
has no Dice/IoU for that image (NaN) and is left out of the mean over images; the pooled
scores (TP/FP/FN summed over the set) have no such case unless the class never appears.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flexseg.config import Experiment
from flexseg.data.classes import ClassMap
from flexseg.data.pairing import split_pairs
from flexseg.fsutil import atomic_write_text

EPSILON = 1e-7  # Keras' clip for cross-entropy


def confusion_counts(truth: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes, 3) array of TP, FP, FN for class-index masks of equal shape."""
    k = num_classes
    matrix = np.bincount(truth.reshape(-1).astype(np.int64) * k + pred.reshape(-1), minlength=k * k).reshape(k, k)
    tp = np.diag(matrix)
    return np.stack([tp, matrix.sum(0) - tp, matrix.sum(1) - tp], axis=1)


def dice_iou(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dice and IoU per row of (TP, FP, FN); NaN where truth and prediction are both empty."""
    tp, fp, fn = (counts[..., i].astype(np.float64) for i in range(3))
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
        iou = np.where(tp + fp + fn > 0, tp / (tp + fp + fn), np.nan)
    return dice, iou


def true_class_probability(indices: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """(H, W) probability the model gave to each pixel's true class."""
    return np.take_along_axis(probs, indices[..., None].astype(np.intp), axis=-1)[..., 0]


def seed_dice_coef_multiclass(indices: np.ndarray, probs: np.ndarray, smooth: float = 1.0, p_true=None) -> float:
    """The seed's metric for one image (all classes, background included): with a one-hot truth,
    Σ onehot·probs is the summed true-class probability and Σ onehot is the pixel count."""
    p_true = true_class_probability(indices, probs) if p_true is None else p_true
    return (2 * float(p_true.sum()) + smooth) / (indices.size + float(probs.sum()) + smooth)


def cross_entropy(indices: np.ndarray, probs: np.ndarray, p_true=None) -> float:
    p_true = true_class_probability(indices, probs) if p_true is None else p_true
    return float(-np.log(np.clip(p_true, EPSILON, 1.0)).mean())


@dataclass
class EvaluationReport:
    class_names: list[str]
    images: list[dict]  # per image: name, loss, dice_coef_multiclass, dice/iou per foreground class
    loss: float
    dice_coef_multiclass: float
    per_class: dict[str, dict[str, float]]  # foreground class -> dice, iou (mean over images) and pooled
    foreground_dice: float | None  # mean over foreground classes of the mean-over-images Dice
    foreground_iou: float | None
    empty_cases: dict[str, int]  # images where a class is absent from truth and prediction

    def to_json(self) -> dict:
        return {
            "loss": self.loss,
            "dice_coef_multiclass": self.dice_coef_multiclass,
            "foreground_dice": self.foreground_dice,
            "foreground_iou": self.foreground_iou,
            "per_class": self.per_class,
            "empty_cases": self.empty_cases,
            "empty_rule": "class absent from truth and prediction: NaN for that image, excluded from the mean",
            "images": self.images,
        }

    def csv_rows(self) -> list[tuple[str, float]]:
        rows = [("loss", self.loss), ("dice_coef_multiclass", self.dice_coef_multiclass)]
        for name, m in self.per_class.items():
            rows += [(f"dice_{name}", m["dice"]), (f"iou_{name}", m["iou"])]
        rows += [("foreground_dice", self.foreground_dice), ("foreground_iou", self.foreground_iou)]
        return rows


class EvaluationAccumulator:
    """Collects per-image results as predictions stream in."""

    def __init__(self, class_map: ClassMap):
        self.class_map = class_map
        self.images: list[dict] = []
        self.counts: list[np.ndarray] = []

    def add(self, name: str, indices: np.ndarray, probs: np.ndarray) -> None:
        k = len(self.class_map)
        pred = probs.argmax(-1)
        counts = confusion_counts(indices, pred, k)
        dice, iou = dice_iou(counts)
        p_true = true_class_probability(indices, probs)
        row = {
            "image": name,
            "loss": cross_entropy(indices, probs, p_true),
            "dice_coef_multiclass": seed_dice_coef_multiclass(indices, probs, p_true=p_true),
        }
        for c in self.class_map.foreground:
            cname = self.class_map.names[c]
            row[f"dice_{cname}"] = _nan_to_none(dice[c])
            row[f"iou_{cname}"] = _nan_to_none(iou[c])
        self.images.append(row)
        self.counts.append(counts)

    def report(self) -> EvaluationReport:
        counts = np.stack(self.counts)  # (images, classes, 3)
        dice, iou = dice_iou(counts)
        pooled_dice, pooled_iou = dice_iou(counts.sum(0))
        per_class, empty = {}, {}
        for c in self.class_map.foreground:
            name = self.class_map.names[c]
            per_class[name] = {
                "dice": _nanmean(dice[:, c]),
                "iou": _nanmean(iou[:, c]),
                "dice_pooled": _nan_to_none(pooled_dice[c]),
                "iou_pooled": _nan_to_none(pooled_iou[c]),
            }
            empty[name] = int(np.isnan(dice[:, c]).sum())
        fg_dice = [m["dice"] for m in per_class.values() if m["dice"] is not None]
        fg_iou = [m["iou"] for m in per_class.values() if m["iou"] is not None]
        return EvaluationReport(
            class_names=self.class_map.names,
            images=self.images,
            loss=float(np.mean([r["loss"] for r in self.images])),
            dice_coef_multiclass=float(np.mean([r["dice_coef_multiclass"] for r in self.images])),
            per_class=per_class,
            foreground_dice=float(np.mean(fg_dice)) if fg_dice else None,
            foreground_iou=float(np.mean(fg_iou)) if fg_iou else None,
            empty_cases=empty,
        )


def _nanmean(values: np.ndarray) -> float | None:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else None


def _nan_to_none(value) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def evaluate(exp: Experiment, batch_size: int | None = None) -> EvaluationReport:
    """Predict the test split with the run's best model and score it; writes evaluation.csv/json."""
    from flexseg.data.pipeline import segmentation_dataset
    from flexseg.model.store import check_model_fits, load_model, read_card

    run_dir = exp.resolved_run_dir
    card = read_card(run_dir)
    check_model_fits(card, exp, run_dir)
    pairs = split_pairs(exp, "test")
    model = load_model(run_dir)
    class_map = ClassMap.from_experiment(exp)
    ds = segmentation_dataset(
        pairs,
        width=card.width,
        height=card.height,
        channels=card.channels,
        class_map=class_map,
        batch_size=batch_size or max(exp.train.batch_size, 4),
    )
    acc = EvaluationAccumulator(class_map)
    names = iter(p.name for p, _ in pairs)
    for images, onehot in ds:
        probs = np.asarray(model.predict_on_batch(images))
        for truth, p in zip(np.asarray(onehot).argmax(-1), probs):
            acc.add(next(names), truth, p)
    report = acc.report()
    write_report(report, run_dir)
    return report


def write_report(report: EvaluationReport, folder: Path) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerows((k, "" if v is None else f"{v:.6f}") for k, v in report.csv_rows())
    atomic_write_text(folder / "evaluation.csv", buf.getvalue())
    atomic_write_text(folder / "evaluation.json", json.dumps(report.to_json(), indent=2) + "\n")
