"""Scores of 2D masks: per image and foreground class, their means and pooled sums, and the
report's files (evaluation.csv, evaluation.json, per_image.csv).

Scores (see ``flexseg.scoring``): Dice, IoU, precision, recall and HD95 per image and class;
their mean over images, and pooled Dice/IoU/precision/recall (TP/FP/FN summed over the set).
With a model, also the legacy scripts' loss and ``dice_coef_multiclass`` (background counted). The
``evaluate.both_empty`` rule says what a class absent from both truth and prediction scores.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from flexseg.data.classes import ClassMap
from flexseg.errors import ConfigError, DataError
from flexseg.fsutil import atomic_write_text
from flexseg.scoring import OVERLAP_METRICS, confusion_counts, hd95, overlap_scores

if TYPE_CHECKING:
    from flexseg.evaluation.volumes import VolumeReport

EPSILON = 1e-7  # Keras' clip for cross-entropy
METRICS = (*OVERLAP_METRICS, "hd95")
HIGHER_IS_BETTER = OVERLAP_METRICS


def true_class_probability(indices: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """(H, W) probability the model gave to each pixel's true class."""
    return np.take_along_axis(probs, indices[..., None].astype(np.intp), axis=-1)[..., 0]


def legacy_dice_coef_multiclass(
    indices: np.ndarray, probs: np.ndarray, smooth: float = 1.0, p_true: np.ndarray | None = None
) -> float:
    """The legacy scripts' metric for one image (all classes, background included): with a one-hot truth,
    Σ onehot·probs is the summed true-class probability and Σ onehot is the pixel count."""
    p_true = true_class_probability(indices, probs) if p_true is None else p_true
    return (2 * float(p_true.sum()) + smooth) / (indices.size + float(probs.sum()) + smooth)


def cross_entropy(indices: np.ndarray, probs: np.ndarray, p_true: np.ndarray | None = None) -> float:
    p_true = true_class_probability(indices, probs) if p_true is None else p_true
    return float(-np.log(np.clip(p_true, EPSILON, 1.0)).mean())


@dataclass
class EvaluationReport:
    class_names: list[str]
    images: list[dict]  # per image: name, spacing, [loss, dice_coef_multiclass,] <metric>_<class>
    loss: float | None  # None when scoring masks without a model
    dice_coef_multiclass: float | None
    per_class: dict[str, dict[str, float | None]]  # foreground class -> metric (mean), <metric>_pooled
    foreground: dict[str, float | None]  # metric -> mean over foreground classes of the class means
    both_empty: dict[str, int]  # images where a class is in neither truth nor prediction
    hd95_undefined: dict[str, int]  # images where exactly one of truth and prediction is empty
    both_empty_rule: str = "nan"
    distance_unit: str = "pixels"  # of HD95: "mm" when every image's spacing came from DICOM
    source: dict = field(default_factory=dict)  # what was scored: model or prediction folder, truth
    volumes_3d: object = None  # VolumeReport: test slices stacked back into their source volumes
    volume_notes: list[str] = field(default_factory=list)
    # a cross-validation's ensemble: each fold out-of-fold and alone on the test split, pooled out-of-fold
    cross_validation: dict | None = None
    output: Path | None = None  # the folder the reports were written into
    page: Path | None = None  # report.html, when one was written (a model's evaluation)

    @property
    def foreground_dice(self) -> float | None:
        return self.foreground["dice"]

    @property
    def foreground_iou(self) -> float | None:
        return self.foreground["iou"]

    def to_json(self) -> dict:
        rule = {
            "nan": "NaN for that image, left out of the class's mean (counted in both_empty)",
            "one": "scored 1.0 (HD95 0)",
        }[self.both_empty_rule]
        return {
            **self.source,
            "images_scored": len(self.images),
            "loss": self.loss,
            "dice_coef_multiclass": self.dice_coef_multiclass,
            "foreground_dice": self.foreground_dice,
            "foreground_iou": self.foreground_iou,
            "foreground": self.foreground,
            "per_class": self.per_class,
            "both_empty": self.both_empty,
            "hd95_undefined": self.hd95_undefined,
            "empty_rule": f"class absent from truth and prediction: {rule}; absent from exactly one: "
            "overlap scores 0, HD95 undefined (counted in hd95_undefined)",
            "hd95_unit": self.distance_unit,
            "images": self.images,
            **({"volumes_3d": self.volumes_3d.to_json()} if self.volumes_3d is not None else {}),
            **({"volume_notes": self.volume_notes} if self.volume_notes else {}),
            **({"cross_validation": self.cross_validation} if self.cross_validation else {}),
        }

    def csv_rows(self) -> list[tuple[str, float | None]]:
        """The legacy scripts' rows first (loss, dice_coef_multiclass), then flexseg's."""
        rows = [("loss", self.loss), ("dice_coef_multiclass", self.dice_coef_multiclass)]
        for name, m in self.per_class.items():
            rows += [(f"dice_{name}", m["dice"]), (f"iou_{name}", m["iou"])]
        rows += [("foreground_dice", self.foreground_dice), ("foreground_iou", self.foreground_iou)]
        for name, m in self.per_class.items():
            rows += [(f"{metric}_{name}", m[metric]) for metric in ("precision", "recall", "hd95")]
            rows += [(f"{metric}_pooled_{name}", m[f"{metric}_pooled"]) for metric in OVERLAP_METRICS]
        rows += [(f"foreground_{metric}", self.foreground[metric]) for metric in ("precision", "recall", "hd95")]
        return rows

    def score(self, key: str) -> float | None:
        """A score by the name --fail-under uses: ``dice`` (foreground mean), ``dice_lesion``
        (one class), ``dice_pooled`` / ``dice_pooled_lesion``."""
        metric, _, rest = key.partition("_")
        pooled = rest == "pooled" or rest.startswith("pooled_")
        cls = rest.removeprefix("pooled").removeprefix("_") if pooled else rest
        if metric not in HIGHER_IS_BETTER:
            raise ConfigError(
                f"--fail-under {key}: not a score where higher is better; "
                f"use one of {', '.join(HIGHER_IS_BETTER)} (foreground mean), e.g. dice_{self.class_names[-1]} "
                f"for one class or dice_pooled for pooled TP/FP/FN"
            )
        if cls and cls not in self.per_class:
            raise ConfigError(f"--fail-under {key}: no foreground class {cls!r}; classes: {', '.join(self.per_class)}")
        name = f"{metric}_pooled" if pooled else metric
        if cls:
            return self.per_class[cls][name]
        values = [m[name] for m in self.per_class.values() if m[name] is not None]
        return float(np.mean(values)) if values else None


def probability_scores(truth: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """The legacy scripts' loss and dice_coef_multiclass of one image's probabilities (H, W, classes)."""
    p_true = true_class_probability(truth, probs)
    return {
        "loss": cross_entropy(truth, probs, p_true),
        "dice_coef_multiclass": legacy_dice_coef_multiclass(truth, probs, p_true=p_true),
    }


class EvaluationAccumulator:
    """Collects per-image scores as predictions stream in."""

    def __init__(self, class_map: ClassMap, both_empty: str = "nan") -> None:
        self.class_map = class_map
        self.both_empty = both_empty
        self.images: list[dict] = []
        self.counts: list[np.ndarray] = []
        self.hd95: list[list[float]] = []
        self.units: set[str] = set()

    def add(
        self,
        name: str,
        truth: np.ndarray,
        pred: np.ndarray,
        probs: np.ndarray | dict | None = None,
        spacing: tuple[float, float] | None = None,
    ) -> None:
        """``truth`` and ``pred`` are class-index masks of one shape; ``probs`` (H, W, classes)
        when a model made ``pred`` (for the legacy scripts' loss and metric), or those scores
        already computed (``probability_scores``); ``spacing`` in mm."""
        if truth.shape != pred.shape:
            raise DataError(
                f"{name}: prediction {pred.shape[1]}×{pred.shape[0]} and truth "
                f"{truth.shape[1]}×{truth.shape[0]} differ in size"
            )
        counts = confusion_counts(truth, pred, len(self.class_map))
        scores = overlap_scores(counts, self.both_empty)
        row: dict = {"image": name, "spacing_mm": list(spacing) if spacing else None}
        row.update(probability_scores(truth, probs) if isinstance(probs, np.ndarray) else probs or {})
        distances = []
        for c in self.class_map.foreground:
            cname = self.class_map.names[c]
            for metric in OVERLAP_METRICS:
                row[f"{metric}_{cname}"] = _nan_to_none(scores[metric][c])
            distances.append(hd95(truth == c, pred == c, spacing or (1.0, 1.0), self.both_empty))
            row[f"hd95_{cname}"] = _nan_to_none(distances[-1])
        self.units.add("mm" if spacing else "pixels")
        self.images.append(row)
        self.counts.append(counts)
        self.hd95.append(distances)

    def report(self, source: dict | None = None) -> EvaluationReport:
        if not self.images:
            raise DataError("nothing to evaluate: no image/mask pairs")
        counts = np.stack(self.counts)  # (images, classes, 3)
        scores = overlap_scores(counts, self.both_empty)
        pooled = overlap_scores(counts.sum(0), self.both_empty)
        distances = np.asarray(self.hd95, np.float64)  # (images, foreground classes)
        tp_fp_fn = counts.sum(-1)  # (images, classes): 0 where the class is in neither
        per_class, both_empty, undefined = {}, {}, {}
        for j, c in enumerate(self.class_map.foreground):
            name = self.class_map.names[c]
            per_class[name] = {metric: _nanmean(scores[metric][:, c]) for metric in OVERLAP_METRICS}
            per_class[name]["hd95"] = _nanmean(distances[:, j])
            per_class[name].update({f"{m}_pooled": _nan_to_none(pooled[m][c]) for m in OVERLAP_METRICS})
            empty = tp_fp_fn[:, c] == 0
            both_empty[name] = int(empty.sum())
            undefined[name] = int((np.isnan(distances[:, j]) & ~empty).sum())
        foreground = {}
        for metric in METRICS:
            values = [m[metric] for m in per_class.values() if m[metric] is not None]
            foreground[metric] = float(np.mean(values)) if values else None
        with_model = "loss" in self.images[0]
        return EvaluationReport(
            class_names=self.class_map.names,
            images=self.images,
            loss=float(np.mean([r["loss"] for r in self.images])) if with_model else None,
            dice_coef_multiclass=float(np.mean([r["dice_coef_multiclass"] for r in self.images]))
            if with_model
            else None,
            per_class=per_class,
            foreground=foreground,
            both_empty=both_empty,
            hd95_undefined=undefined,
            both_empty_rule=self.both_empty,
            distance_unit="mm" if self.units == {"mm"} else "pixels" if self.units == {"pixels"} else "mixed",
            source=source or {},
        )


def _nanmean(values: np.ndarray) -> float | None:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else None


def _nan_to_none(value: object) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def failed_gates(report: EvaluationReport, gates: list[str]) -> list[str]:
    """The ``METRIC=VALUE`` gates the report does not meet, each as a sentence."""
    failures = []
    for gate in gates:
        key, sep, value = gate.partition("=")
        try:
            threshold = float(value)
        except ValueError:
            threshold = None
        if not sep or threshold is None:
            raise ConfigError(f"--fail-under {gate[:80]!r}: write METRIC=VALUE, e.g. --fail-under dice=0.8")
        if not math.isfinite(threshold):
            raise ConfigError(
                f"--fail-under {gate[:80]!r}: the bar must be a finite number such as 0.8 "
                "(a NaN bar would let every score pass)"
            )
        score = report.score(key.strip())
        if score is None or score < threshold:
            shown = "undefined" if score is None else f"{score:.4f}"
            failures.append(f"{key.strip()} {shown} is under {threshold:g}")
    return failures


def write_summary(report: EvaluationReport | VolumeReport, folder: Path) -> None:
    """evaluation.csv (metric, value rows) and evaluation.json of a slice or volume report."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerows((k, "" if v is None else f"{v:.6f}") for k, v in report.csv_rows())
    atomic_write_text(folder / "evaluation.csv", buf.getvalue())
    atomic_write_text(folder / "evaluation.json", json.dumps(report.to_json(), indent=2) + "\n")


def write_report(report: EvaluationReport, folder: Path) -> None:
    write_summary(report, folder)
    columns = list(report.images[0])
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in report.images:
        writer.writerow({k: _cell(v) for k, v in row.items()})
    atomic_write_text(folder / "per_image.csv", buf.getvalue())


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "x".join(f"{v:g}" for v in value)
    return f"{value:.6f}" if isinstance(value, float) else str(value)
