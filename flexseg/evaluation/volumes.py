"""Scores of label volumes (NIfTI) in 3D, for `evaluate --pred` on volumes and for test slices
cut from volumes, stacked back.

Per volume and foreground class: Dice, IoU, HD95 in mm (anisotropic voxels), normalised surface
Dice (NSD) at a tolerance in mm, and the predicted and true volume in ml with their relative
difference. Over volumes: mean and median, and Dice/IoU pooled over all voxels. Predictions
from any tool (an nnU-Net prediction folder) are scored the same way; files pair by name.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from flexseg.data.manifest import read_split_manifest
from flexseg.data.volumes import is_volume, volume_stem
from flexseg.errors import ConfigError, DataError
from flexseg.fsutil import atomic_write_text
from flexseg.scoring import confusion_counts, hd95, overlap_scores, surface_dice

if TYPE_CHECKING:
    from flexseg.config import Experiment

PER_VOLUME_METRICS = ("dice", "iou", "hd95_mm", "nsd", "pred_ml", "true_ml", "volume_rel_diff")
HIGHER_IS_BETTER = ("dice", "iou", "nsd")


@dataclass
class VolumeReport:
    source: dict
    class_names: list[str]  # the foreground classes
    volumes: list[dict]  # one row per volume: name, spacing_mm, then <metric>_<class>
    per_class: dict[str, dict]  # mean and median over volumes, and pooled Dice/IoU
    nsd_tolerance_mm: dict[str, float]
    both_empty_rule: str
    both_empty: dict[str, int] = field(default_factory=dict)  # volumes where a class is in neither
    output: Path | None = None  # the folder the reports were written into

    @property
    def foreground_dice(self) -> float | None:
        return self._mean_over_classes("dice")

    def _mean_over_classes(self, name: str) -> float | None:
        values = [m[name] for m in self.per_class.values() if m[name] is not None]
        return float(np.mean(values)) if values else None

    def to_json(self) -> dict:
        return {
            **self.source,
            "volumes_scored": len(self.volumes),
            "foreground_dice": self.foreground_dice,
            "foreground_nsd": self._mean_over_classes("nsd"),
            "per_class": self.per_class,
            "nsd_tolerance_mm": self.nsd_tolerance_mm,
            "hd95_unit": "mm",
            "both_empty": self.both_empty,
            "both_empty_rule": self.both_empty_rule,
            "volumes": self.volumes,
        }

    def csv_rows(self) -> list[tuple[str, float | None]]:
        rows: list[tuple[str, float | None]] = [("foreground_dice", self.foreground_dice)]
        for name, m in self.per_class.items():
            rows += [(f"{key}_{name}", value) for key, value in m.items()]
        return rows

    def score(self, key: str) -> float | None:
        """A score by the name --fail-under uses: ``dice`` (foreground mean over classes of the mean
        over volumes), ``nsd_bone`` (one class), ``dice_pooled``."""
        metric, _, rest = key.partition("_")
        pooled = rest == "pooled" or rest.startswith("pooled_")
        cls = rest.removeprefix("pooled").removeprefix("_") if pooled else rest
        if metric not in HIGHER_IS_BETTER or (pooled and metric == "nsd"):
            raise ConfigError(
                f"--fail-under {key}: for volumes use dice, iou or nsd (foreground mean), e.g. "
                f"nsd_{self.class_names[-1]} for one class, or dice_pooled"
            )
        if cls and cls not in self.per_class:
            raise ConfigError(f"--fail-under {key}: no foreground class {cls!r}; classes: {', '.join(self.per_class)}")
        name = f"{metric}_pooled" if pooled else metric
        return self.per_class[cls][name] if cls else self._mean_over_classes(name)


def _nan_to_none(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _summary(values: list[float]) -> tuple[float | None, float | None]:
    finite = [v for v in values if math.isfinite(v)]
    return (float(np.mean(finite)), float(np.median(finite))) if finite else (None, None)


def _volumes_by_stem(folder: Path, option: str) -> dict[str, Path]:
    """The label volumes of ``folder`` by name without suffix; two files of one name (``a.nii`` and
    ``a.nii.gz``) are refused, as flexseg cannot know which one is meant."""
    if not folder.is_dir():
        raise DataError(f"{option} {folder}: no such folder")
    found: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if is_volume(path):
            found.setdefault(volume_stem(path), []).append(path)
    twice = sorted(k for k, paths in found.items() if len(paths) > 1)
    if twice:
        names = " and ".join(p.name for p in found[twice[0]])
        raise DataError(
            f"{option} {folder}: {names} are one volume twice ({len(twice)} such name(s)); flexseg cannot tell "
            "which to score. Remove or rename one"
        )
    return {k: paths[0] for k, paths in found.items()}


def pair_volumes(pred_dir: Path, truth_dir: Path) -> list[tuple[Path, Path]]:
    """Label volumes paired by name (``case_001.nii.gz`` ↔ ``case_001.nii.gz`` or ``.nii``)."""
    preds, truths = _volumes_by_stem(pred_dir, "--pred"), _volumes_by_stem(truth_dir, "--truth")
    missing = sorted(set(preds) - set(truths))
    if missing:
        raise DataError(f"--truth {truth_dir}: no label volume for {len(missing)} prediction(s), e.g. {missing[0]!r}")
    if not preds:
        raise DataError(f"--pred {pred_dir}: no label volumes (nii, nii.gz)")
    unscored = sorted(set(truths) - set(preds))
    if unscored:
        raise DataError(
            f"--pred {pred_dir}: no prediction for {len(unscored)} truth volume(s), e.g. {unscored[0]!r}; "
            "a missing prediction would be left out of the scores"
        )
    return [(preds[k], truths[k]) for k in sorted(preds)]


def score_volume(
    truth: np.ndarray,
    pred: np.ndarray,
    spacing: tuple[float, ...],
    class_names: list[str],
    tolerances: dict[str, float],
    both_empty: str = "nan",
) -> dict:
    """One volume's row: <metric>_<class> for each foreground class (class index = position + 1)."""
    voxel_ml = float(np.prod(spacing)) / 1000.0
    counts = confusion_counts(truth, pred, len(class_names) + 1)[1:]
    overlap = overlap_scores(counts, both_empty)
    row: dict = {}
    for i, name in enumerate(class_names):
        c = i + 1
        t, p = truth == c, pred == c
        true_ml, pred_ml = float(t.sum()) * voxel_ml, float(p.sum()) * voxel_ml
        row[f"dice_{name}"] = float(overlap["dice"][i])
        row[f"iou_{name}"] = float(overlap["iou"][i])
        row[f"hd95_mm_{name}"] = hd95(t, p, spacing, both_empty)
        row[f"nsd_{name}"] = surface_dice(t, p, spacing, tolerances[name], both_empty)
        row[f"pred_ml_{name}"] = pred_ml
        row[f"true_ml_{name}"] = true_ml
        row[f"volume_rel_diff_{name}"] = (pred_ml - true_ml) / true_ml if true_ml > 0 else math.nan
        row[f"_counts_{name}"] = counts[i]
    return row


def volume_report(
    exp: Experiment, volumes: list[tuple[str, np.ndarray, np.ndarray, tuple[float, ...]]], source: dict
) -> VolumeReport:
    """Scores of (name, truth labels, predicted labels, voxel spacing in mm) volumes, and their
    mean, median and pooled values per foreground class."""
    foreground = [c.name for c in exp.classes][1:]
    tolerances = exp.evaluate.tolerances_mm(foreground)
    rows, pooled = [], np.zeros((len(foreground), 3), np.int64)
    both_empty = dict.fromkeys(foreground, 0)
    for name, truth, pred, spacing in volumes:
        row = score_volume(truth, pred, spacing, foreground, tolerances, exp.evaluate.both_empty)
        for i, cls in enumerate(foreground):
            counts = row.pop(f"_counts_{cls}")
            pooled[i] += counts
            both_empty[cls] += int(counts.sum() == 0)
        rows.append({"volume": name, "spacing_mm": "x".join(f"{s:.4g}" for s in spacing), **row})
    pooled_scores = overlap_scores(pooled, exp.evaluate.both_empty)
    per_class = {}
    for i, cls in enumerate(foreground):
        m: dict = {}
        for metric in ("dice", "iou", "hd95_mm", "nsd", "volume_rel_diff"):
            m[metric], m[f"{metric}_median"] = _summary([r[f"{metric}_{cls}"] for r in rows])
        m["dice_pooled"] = _nan_to_none(float(pooled_scores["dice"][i]))
        m["iou_pooled"] = _nan_to_none(float(pooled_scores["iou"][i]))
        per_class[cls] = m
    return VolumeReport(
        source=source,
        class_names=foreground,
        volumes=[{k: (_nan_to_none(v) if isinstance(v, float) else v) for k, v in r.items()} for r in rows],
        per_class=per_class,
        nsd_tolerance_mm=tolerances,
        both_empty_rule=exp.evaluate.both_empty,
        both_empty=both_empty,
    )


def slice_origins(split_dir: Path) -> tuple[dict[str, tuple[str, int]], dict[str, dict]]:
    """From the split.json beside a split folder: image file name → (volume, slice index) for
    slices cut from volumes, and each volume's geometry; empty when the split has no volumes."""
    manifest = read_split_manifest(split_dir)
    if manifest is None:
        return {}, {}
    return manifest.slice_origins(), {name: v.model_dump() for name, v in manifest.volumes.items()}


def slices_by_volume(names: list[str], origins: dict, geometry: dict) -> tuple[dict, dict]:
    """Slice file names grouped by their source volume, each group in slice order: (the volumes
    whose every slice is among ``names``, the others). ``origins`` and ``geometry`` as
    ``slice_origins`` gives them; names cut from no volume are left out."""
    grouped: dict[str, list[tuple[int, str]]] = {}
    for name in names:
        if name in origins:
            volume, index = origins[name]
            grouped.setdefault(volume, []).append((index, name))
    whole, partial = {}, {}
    for volume, members in sorted(grouped.items()):
        total = int(geometry.get(volume, {}).get("slices", 0))
        ordered = [n for _, n in sorted(members)]
        (partial if total and len(members) < total else whole)[volume] = ordered
    return whole, partial


def score_slices_as_volumes(
    exp: Experiment, slices: dict[str, tuple[np.ndarray, np.ndarray]], split_dir: Path
) -> tuple[VolumeReport | None, list[str]]:
    """The test slices of each source volume stacked back into the volume and scored in 3D;
    a volume only some of whose slices are in the split (split.empty_slices below 1) is left out
    and named in the notes."""
    origins, geometry = slice_origins(split_dir)
    whole, partial = slices_by_volume(list(slices), origins, geometry)
    notes = [
        f"{volume}: {len(names)} of its {geometry[volume]['slices']} slices in the test split; not scored in 3D"
        for volume, names in partial.items()
    ]
    volumes = []
    for volume, names in whole.items():
        truth = np.stack([slices[n][0] for n in names])
        pred = np.stack([slices[n][1] for n in names])
        spacing = tuple(geometry.get(volume, {}).get("spacing_mm", (1.0, 1.0, 1.0)))
        volumes.append((volume, truth, pred, spacing))
    if not volumes:
        return None, notes
    return volume_report(exp, volumes, {"model_slices_from": str(split_dir)}), notes


def write_volume_report(report: VolumeReport, folder: Path) -> None:
    from flexseg.evaluation.slices import write_summary

    write_summary(report, folder)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(report.volumes[0]), lineterminator="\n")
    writer.writeheader()
    for row in report.volumes:
        writer.writerow({k: "" if v is None else (f"{v:.6f}" if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write_text(folder / "per_volume.csv", buf.getvalue())
