"""flexseg evaluate: score a model on the test split, or a folder of predicted masks (or label
volumes) against the truth, per image (volume) and per foreground class, at each one's own size.

The model predicts through the predictor infer runs (flexseg.inference); the scores, reports and
their files are flexseg.evaluation's. Test slices cut from volumes are also stacked back into
their volumes and scored in 3D.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from flexseg.config import PREDICT_BATCH, Experiment
from flexseg.data.classes import ClassMap
from flexseg.data.pairing import pair_by_stem, split_pairs
from flexseg.data.volumes import check_same_grid, class_indices, read_volume
from flexseg.errors import ConfigError, DataError
from flexseg.evaluation.postprocessing import POSTPROCESSING_FILE, decide
from flexseg.evaluation.slices import EvaluationAccumulator, EvaluationReport, probability_scores, write_report
from flexseg.evaluation.volumes import (
    VolumeReport,
    pair_volumes,
    score_slices_as_volumes,
    slice_origins,
    slices_by_volume,
    volume_report,
    write_volume_report,
)
from flexseg.fsutil import atomic_write_text
from flexseg.runs import RUN_LEGACY_NAMES, open_output, refuse_inputs


def pixel_spacings(split_dir: Path) -> dict[str, tuple[float, float]]:
    """Pixel spacing (mm) by file stem, from the ``split.json`` that ``flexseg split`` wrote
    beside the split folder (recorded for images converted from DICOM); empty when unknown."""
    from flexseg.data.manifest import read_split_manifest

    manifest = read_split_manifest(split_dir)
    return manifest.spacings() if manifest else {}


def evaluate(exp: Experiment, batch_size: int | None = None) -> EvaluationReport:
    """Predict the test split with the run's best model (a cross-validation: the ensemble of its
    folds) and score it at each image's own size; writes evaluation.csv, evaluation.json and
    per_image.csv into the run folder, and for a cross-validation cross_validation.json: each
    fold's out-of-fold (validation) scores, the pooled out-of-fold scores, and each single
    fold on the test split beside the ensemble."""
    from flexseg.data.manifest import read_split_manifest
    from flexseg.model.store import is_cross_validation, read_card

    run_dir = exp.resolved_run_dir
    read_card(run_dir)  # no trained model: say so before anything is created
    read_split_manifest(exp.data.split_dir("test"))  # nor a damaged split.json, before the model loads
    # the run folder is locked from the start: a train --force finishing meanwhile would otherwise
    # put a new model beside the old model's scores
    with open_output(run_dir, "evaluate", legacy_names=RUN_LEGACY_NAMES) as handle:
        gallery = _gallery(exp)
        if is_cross_validation(run_dir):
            report = _evaluate_cross_validation(exp, run_dir, batch_size, gallery)
            atomic_write_text(run_dir / CV_REPORT, json.dumps(report.cross_validation, indent=1) + "\n")
        else:
            report = _evaluate_run(exp, run_dir, batch_size, gallery)
        write_report(report, run_dir)
        from flexseg import report as run_report

        report.page = run_report.publish(handle, gallery)
        _track(run_dir, report)
    return report


def _track(run_dir: Path, report: EvaluationReport) -> None:
    """The test scores, evaluation.json and the report into the run's MLflow run (train.track)."""
    from flexseg.tracking import log_evaluation

    scores = {f"foreground_{metric}": value for metric, value in report.foreground.items()}
    for name, values in report.per_class.items():
        scores.update({f"{metric}_{name}": value for metric, value in values.items()})
    log_evaluation(run_dir, scores, [run_dir / "evaluation.json", report.page, report.page.parent / "report"])


def _gallery(exp: Experiment) -> object:
    """The pictures of the test cases for report.html (flexseg.report); told the test images by
    the evaluation that scores them."""
    from flexseg.report import CaseGallery

    return CaseGallery({}, [c.name for c in exp.classes])


CV_REPORT = "cross_validation.json"


def _evaluate_run(exp: Experiment, run_dir: Path, batch_size: int | None, gallery: object) -> EvaluationReport:
    from flexseg.model.store import read_card

    card = read_card(run_dir)
    test_dir, pairs = exp.data.split_dir("test"), _pairs(exp, "test")
    _check(exp, card, run_dir, pairs)
    acc = EvaluationAccumulator(ClassMap.from_experiment(exp), exp.evaluate.both_empty)
    predictor = _predictor(exp, [run_dir], batch_size, len(pairs))
    gallery.images.update((image.name, image) for image, _ in pairs)
    slices = _predict_and_score(exp, predictor, pairs, test_dir, [acc, gallery])
    report = acc.report({"model": str(run_dir), "truth": str(test_dir), "precision": predictor.precision})
    if slices:
        report.volumes_3d, report.volume_notes = score_slices_as_volumes(exp, slices, test_dir)
    return report


def _evaluate_cross_validation(
    exp: Experiment, run_dir: Path, batch_size: int | None, gallery: object
) -> EvaluationReport:
    from flexseg.data.folds import fold_experiment
    from flexseg.model.store import model_members, read_card

    card, members = read_card(run_dir), model_members(run_dir)
    class_map = ClassMap.from_experiment(exp)
    fold_exps = [fold_experiment(exp, int(m.name.removeprefix("fold_"))) for m in members]
    test_exp = fold_exps[-1]  # every fold holds the same test split
    test_dir, test = test_exp.data.split_dir("test"), _pairs(test_exp, "test")
    valid = [_pairs(fold_exp, "valid") for fold_exp in fold_exps]
    _check(exp, card, members[0], [p for pairs in valid for p in pairs] + test)  # every file once, before predicting
    pooled = EvaluationAccumulator(class_map, exp.evaluate.both_empty)
    folds, out_of_fold = [], []
    for member, fold_exp, fold_valid in zip(members, fold_exps, valid):
        predictor = _predictor(exp, [member], batch_size, len(fold_valid) + len(test))
        oof = EvaluationAccumulator(class_map, exp.evaluate.both_empty)
        valid_dir = fold_exp.data.split_dir("valid")
        _predict_and_score(fold_exp, predictor, fold_valid, valid_dir, [oof, pooled], keep=out_of_fold)
        alone = EvaluationAccumulator(class_map, exp.evaluate.both_empty)
        _predict_and_score(fold_exp, predictor, test, test_dir, [alone])
        folds.append(
            {
                "fold": int(member.name.removeprefix("fold_")),
                "out_of_fold": _summary(oof.report({})),
                "test": _summary(alone.report({})),
            }
        )
    # post-processing chosen by evidence: on the pooled out-of-fold predictions, then applied to the ensemble
    decision = decide([t for t, _ in out_of_fold], [p for _, p in out_of_fold], card.class_names)
    atomic_write_text(run_dir / POSTPROCESSING_FILE, json.dumps(decision, indent=1) + "\n")
    ensemble = _predictor(exp, members, batch_size, len(test))
    ensemble.options = ensemble.options.with_decision(decision, card.class_names)
    acc, plain = (EvaluationAccumulator(class_map, exp.evaluate.both_empty) for _ in range(2))
    gallery.images.update((image.name, image) for image, _ in test)
    slices = _predict_and_score(test_exp, ensemble, test, test_dir, [acc, gallery], unprocessed=[plain])
    meta = {"model": str(run_dir), "folds": len(members), "truth": str(test_dir), "precision": ensemble.precision}
    report = acc.report(meta)
    if slices:
        report.volumes_3d, report.volume_notes = score_slices_as_volumes(test_exp, slices, test_dir)
    report.cross_validation = {
        "folds": folds,
        "out_of_fold_pooled": _summary(pooled.report({})),
        "ensemble_test_without_postprocessing": _summary(plain.report({})),
        "ensemble_test": _summary(report),
        "postprocessing": {k: v for k, v in decision.items() if k != "tried"},
    }
    return report


def _summary(report: EvaluationReport) -> dict:
    """Per foreground class the mean and pooled Dice, and their foreground means."""
    per_class = {name: {k: m[k] for k in ("dice", "dice_pooled")} for name, m in report.per_class.items()}
    return {"foreground_dice": report.score("dice"), "foreground_dice_pooled": report.score("dice_pooled"), **per_class}


def _pairs(exp: Experiment, split: str) -> list[tuple[Path, Path]]:
    pairs = split_pairs(exp, split)
    if not pairs:
        raise DataError(f"{exp.data.split_dir(split)}: the {split} split is empty; nothing to evaluate")
    return pairs


def _check(exp: Experiment, card: object, model_dir: Path, pairs: list) -> None:
    """The model is the experiment's, every file is readable and each mask is its image's size."""
    from flexseg.data.audit import check_pairs
    from flexseg.model.store import check_model_fits

    check_model_fits(card, exp, model_dir)
    check_pairs(pairs, ClassMap.from_experiment(exp))


def _predictor(exp: Experiment, members: list[Path], batch_size: int | None, images: int) -> object:
    """The predictor infer runs, in infer's precision (a model trained in bfloat16 on an AMX host
    is not emulated on an AVX2 one), batching ``images`` with no batch of one."""
    from flexseg.inference import Predictor
    from flexseg.model.prediction import evaluation_batch_size

    batch = evaluation_batch_size(images, batch_size or max(exp.train.batch_size, PREDICT_BATCH))
    return Predictor.from_runs(members, precision=exp.infer.precision, batch_size=batch)  # the run folder is locked


def _predict_and_score(
    exp: Experiment,
    predictor: object,
    pairs: list[tuple[Path, Path]],
    split_dir: Path,
    accs: list,
    keep: list | None = None,
    unprocessed: tuple = (),
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Predict ``pairs`` (post-processed as the predictor's options say: slices cut from a volume
    stacked back and post-processed in 3D, as infer does a volume) and add each image's scores to
    every accumulator of ``accs`` (and, labels without any post-processing, to those of
    ``unprocessed``), and its (truth, labels) to ``keep`` (a whole volume's slices as one 3D
    stack); returns the (truth, labels) of each slice cut from a volume (for scoring in 3D)."""
    from flexseg.data.io import read_mask, resize
    from flexseg.data.pipeline import image_dataset

    card, class_map = predictor.card, ClassMap.from_experiment(exp)
    spacings = pixel_spacings(split_dir)
    origins, geometry = slice_origins(split_dir)
    slices: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    pending: dict[str, tuple] = {}  # slices of volumes: post-processed in 3D once their volume is read
    ds = image_dataset(
        [p for p, _ in pairs],
        width=card.width,
        height=card.height,
        channels=card.channels,
        batch_size=predictor.batch_size,
    )

    def score_one(
        name: str, truth: np.ndarray, labels: np.ndarray, raw: np.ndarray, probs: object, spacing: object
    ) -> None:
        for acc in accs:
            acc.add(name, truth, labels, probs, spacing)
        for acc in unprocessed:
            acc.add(name, truth, raw, probs, spacing)

    for images, sizes, indices in ds:
        for probs, i, size in zip(predictor.batch(np.asarray(images)), np.asarray(indices), np.asarray(sizes)):
            image_path, mask_path = pairs[int(i)]
            if not size.any():
                raise DataError(
                    f"{image_path}: not a readable image (corrupt, truncated or not an image); fix or "
                    f"remove it (and its mask) from {split_dir}"
                )
            truth = class_map.to_indices(read_mask(mask_path)).indices
            if tuple(truth.shape) != (int(size[0]), int(size[1])):
                raise DataError(
                    f"{image_path} is {int(size[1])}×{int(size[0])} but its mask {mask_path.name} is "
                    f"{truth.shape[1]}×{truth.shape[0]}: not a pair. Fix {split_dir}"
                )
            full = resize(probs, truth.shape[1], truth.shape[0])  # probabilities, so edges follow the soft boundary
            raw, spacing = full.argmax(-1).astype(np.uint8), spacings.get(image_path.stem)
            if image_path.name in origins:
                pending[image_path.name] = (truth, raw, probability_scores(truth, full), spacing)
                continue
            labels = predictor.labels(full)
            score_one(image_path.name, truth, labels, raw, full, spacing)
            if keep is not None:
                keep.append((truth, labels))
    for names in _volumes_of(pending, origins, geometry):
        # a whole volume's slices: post-processed in 3D, as infer post-processes a volume; the
        # slices of a volume the split holds only some of (split.empty_slices) one by one
        truths = [pending[n][0] for n in names]
        raws = np.stack([pending[n][1] for n in names]) if len(names) > 1 else None
        processed = (
            predictor.postprocess(raws, predictor.num_classes)
            if raws is not None
            else np.stack([predictor.postprocess(pending[n][1], predictor.num_classes) for n in names])
        )
        for n, truth, labels in zip(names, truths, processed):
            score_one(n, truth, labels, pending[n][1], pending[n][2], pending[n][3])
            slices[n] = (truth, labels)
        if keep is not None and raws is not None:
            keep.append((np.stack(truths), processed))  # the post-processing decision sees the volume
        elif keep is not None:
            keep.extend(zip(truths, processed))
    return slices


def _volumes_of(pending: dict[str, tuple], origins: dict, geometry: dict) -> list[list[str]]:
    """The names of ``pending`` slices grouped by their volume, in slice order: a list per volume
    whose slices are all there and of one size (a 3D stack), a list of one per slice of the others."""
    whole, partial = slices_by_volume(list(pending), origins, geometry)
    out = []
    for names in whole.values():
        if len({pending[n][0].shape for n in names}) == 1:
            out.append(names)
        else:
            out.extend([n] for n in names)
    for names in partial.values():
        out.extend([n] for n in names)
    return out


def score(
    exp: Experiment, pred: Path | None = None, truth: Path | None = None, output: Path | None = None
) -> tuple[EvaluationReport, Path]:
    """``flexseg evaluate``: the run's model on the test split, or ``pred`` masks against ``truth``.
    Returns the report and the folder it was written into."""
    if (pred is None) != (truth is None):
        raise ConfigError(
            "--pred and --truth go together: the predicted masks and the truth masks to score them against"
        )
    if output is not None and pred is None:
        raise ConfigError("--output is for --pred/--truth; a model's evaluation goes into its run folder")
    if pred is not None:
        from flexseg.data.volumes import is_volume

        if pred.is_dir() and any(is_volume(p) for p in pred.iterdir()):
            return evaluate_volume_folders(exp, pred.resolve(), truth.resolve(), output)
        return evaluate_folders(exp, pred.resolve(), truth.resolve(), output)
    return evaluate(exp), exp.resolved_run_dir


def evaluate_folders(
    exp: Experiment, pred_dir: Path, truth_dir: Path, output: Path | None = None
) -> tuple[EvaluationReport, Path]:
    """Score a folder of predicted masks against a folder of truth masks (paired by file stem),
    without a model; writes the report into ``output`` (default ``<run_dir>/evaluate/<pred folder>``)."""
    from flexseg.data.io import read_mask

    for what, folder in (("--pred", pred_dir), ("--truth", truth_dir)):
        if not folder.is_dir():
            raise DataError(f"{what} {folder}: no such folder")
    pairs = pair_by_stem(pred_dir, truth_dir)
    class_map = ClassMap.from_experiment(exp)
    spacings = pixel_spacings(truth_dir.parent)
    acc = EvaluationAccumulator(class_map, exp.evaluate.both_empty)
    for pred_path, truth_path in pairs:
        pred = class_map.to_indices(read_mask(pred_path)).indices
        truth = class_map.to_indices(read_mask(truth_path)).indices
        acc.add(truth_path.name, truth, pred, spacing=spacings.get(truth_path.stem))
    report = acc.report({"predictions": str(pred_dir), "truth": str(truth_dir)})
    folder = (output or exp.resolved_run_dir / "evaluate" / pred_dir.name).resolve()
    refuse_inputs(folder, [("--pred", pred_dir), ("--truth", truth_dir)], "--output")
    with open_output(folder, "evaluate"):
        write_report(report, folder)
    return report, folder


def evaluate_volume_folders(
    exp: Experiment, pred_dir: Path, truth_dir: Path, output: Path | None = None
) -> tuple[VolumeReport, Path]:
    """Score a folder of predicted label volumes against a folder of truth label volumes; writes
    evaluation.json, evaluation.csv and per_volume.csv into ``output`` (default
    ``<run_dir>/evaluate/<pred folder>``)."""
    names = [c.name for c in exp.classes]
    scored = []
    for pred_path, truth_path in pair_volumes(pred_dir, truth_dir):
        truth_volume, pred_volume = read_volume(truth_path), read_volume(pred_path)
        check_same_grid(pred_volume, truth_volume)
        truth, pred = class_indices(truth_volume, len(names)), class_indices(pred_volume, len(names))
        scored.append((truth_path.name, truth, pred, truth_volume.spacing()))
    report = volume_report(exp, scored, {"predictions": str(pred_dir), "truth": str(truth_dir)})
    folder = (output or exp.resolved_run_dir / "evaluate" / pred_dir.name).resolve()
    refuse_inputs(folder, [("--pred", pred_dir), ("--truth", truth_dir)], "--output")
    with open_output(folder, "evaluate"):
        write_volume_report(report, folder)
    return report, folder
