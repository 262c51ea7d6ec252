"""Everything flexseg draws on the screen: tables, summaries, one-line results. Human output goes
to stderr through ``flexseg.console`` (silent with --quiet); the commands return data, and the
CLI hands it here."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.markup import escape

from flexseg import console as out

if TYPE_CHECKING:
    from flexseg.commands.augment import AugmentResult
    from flexseg.commands.demo import DemoResult
    from flexseg.commands.export import ExportResult
    from flexseg.commands.import_config import ImportResult
    from flexseg.commands.infer import InferResult
    from flexseg.commands.plan import PlanResult
    from flexseg.commands.split import SplitPlan, SplitResult
    from flexseg.commands.stats import StatsReport
    from flexseg.config import Experiment
    from flexseg.evaluation.slices import EvaluationReport
    from flexseg.evaluation.volumes import VolumeReport
    from flexseg.resources import ShippedExperiment
    from flexseg.training.fit import TrainResult


def number(v: float | None, digits: int = 4) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def error(message: str) -> None:
    """One line, whatever the message holds (``console.one_line``)."""
    out.console().print(f"[red]error:[/] {escape(out.one_line(message))}", highlight=False, soft_wrap=True)


def interrupted(signal_name: str) -> None:
    out.console().print(f"[red]interrupted[/] ({signal_name})", highlight=False)


# ---------------------------------------------------------------- split


def split_plan(exp: Experiment, plan: SplitPlan) -> None:
    out.info(
        f"paired {len(plan.pairing.pairs)} images from {plan.images_dir} with masks from {plan.masks_dir} "
        f"(split.pairing: {exp.split.pairing}); groups: {plan.grouping}"
    )
    if out.is_quiet():
        return
    from rich.table import Table

    table = Table(title=f"split of {len(plan.pairing.pairs)} pairs" + (f", {plan.folds} folds" if plan.folds else ""))
    for col in ("split", "pairs", "groups"):
        table.add_column(col, justify="left" if col == "split" else "right")
    groups = plan.group_counts()
    for place, n in plan.counts().items():
        table.add_row(place, str(n), str(groups[place]))
    out.console().print(table)


def split_dry_run(plan: SplitPlan) -> None:
    for (image, mask), group, place in list(zip(plan.pairing.pairs, plan.groups, plan.assignment))[:8]:
        out.info(f"  {place:>6}  {image.name}  ↔  {mask.name}  (group {group})")
    out.info(f"dry run: would write {len(plan.pairing.pairs)} pairs into {plan.output}; nothing written")


def split_done(exp: Experiment, plan: SplitPlan, result: SplitResult) -> None:
    for how, n in result.dicom_notes.items():
        example = next(i for i, m in plan.pairing.pairs if i.suffix.lower() == ".dcm")
        out.info(f"{n} DICOM image(s) → 8-bit PNG using the {how} (e.g. {example.name})")
    warning = result.audit.summary(exp.data.mask_tolerance)
    if warning:
        out.warn(warning.replace("data.mask_tolerance", "split.mask_values / data.mask_tolerance"))
    what = f"{sum(result.counts.values())} pairs"
    if result.volume_slices:
        what = f"{result.volume_slices} slice pairs of {len(plan.pairing.pairs)} volumes ({exp.volume.plane})"
    out.info(f"wrote {what} in {result.seconds:.1f}s → {result.output} (manifest split.json)")


# ---------------------------------------------------------------- training progress

# the metrics of a finished epoch's line, most wanted first: as many as the terminal's width holds
EPOCH_LINE_ORDER = (
    "loss",
    "val_loss",
    "val_foreground_dice",
    "foreground_dice",
    "learning_rate",
    "dice_coef_multiclass",
    "val_dice_coef_multiclass",
)


def epoch_line(epoch: int, epochs: int, logs: dict, rate: float, seconds: float, width: int | None = None) -> str:
    """One line per finished epoch: the epoch, the metrics that fit in ``width`` (all when None),
    images/s and the epoch's time."""
    from flexseg.training.callbacks import short_metric_name

    head = f"epoch {epoch:>{len(str(epochs))}}/{epochs}"
    tail = f"{rate:.2f} img/s  {seconds:.1f}s"
    keys = [k for k in EPOCH_LINE_ORDER if k in logs] + [k for k in logs if k not in EPOCH_LINE_ORDER]
    parts = []
    for key in keys:
        part = f"{short_metric_name(key)} {float(logs[key]):.4g}"
        if width is not None and len("  ".join([head, *parts, part, tail])) > width:
            break
        parts.append(part)
    return "  ".join([head, *parts, tail])


class TrainingBar:
    """On a terminal: a live bar for the epoch in progress (steps, images/s, loss, time left), and
    one summary line per finished epoch, fitted to the width. Elsewhere (CI logs): the full line."""

    def __init__(self) -> None:
        self.progress = None
        self.task = None

    def start(self, epochs: int, steps: int) -> None:
        self.epochs, self.steps = epochs, steps
        self.progress = out.live_progress("epoch {task.fields[epoch]}", "{task.fields[info]}")
        if self.progress:
            self.progress.start()

    def step(self, epoch: int, done: int, loss: float | None, rate: float) -> None:
        if not self.progress:
            return
        if self.task is None:
            self.task = self.progress.add_task("", total=self.steps, epoch=f"{epoch}/{self.epochs}", info="")
        info = f"{rate:.2f} img/s" + ("" if loss is None else f"  loss {loss:.4g}")
        self.progress.update(self.task, completed=done, info=info)

    def epoch_done(self, epoch: int, epochs: int, logs: dict, rate: float, seconds: float) -> None:
        if self.progress:
            if self.task is not None:
                self.progress.remove_task(self.task)
                self.task = None
            self.progress.console.print(
                epoch_line(epoch, epochs, logs, rate, seconds, out.console().width), highlight=False, markup=False
            )
        elif not out.is_quiet():
            out.info(epoch_line(epoch, epochs, logs, rate, seconds))

    def stop(self) -> None:
        if self.progress:
            self.progress.stop()


# ---------------------------------------------------------------- augment, stats, train


def augment_done(result: AugmentResult) -> None:
    out.info(
        f"{result.written} augmented pairs from {result.sources} originals in {result.seconds:.1f}s "
        f"({result.pairs_per_second:.1f} pairs/s) → {result.split_dir}"
    )


def stats_report(report: StatsReport) -> None:
    for p in report.problems:
        if p.severity == "warning":
            out.warn(p.message)
        elif out.is_quiet():
            continue
        else:
            out.console().print(f"[red]problem:[/] {escape(p.message)}", highlight=False, soft_wrap=True)
    if out.is_quiet():
        return
    from rich import box
    from rich.table import Table

    table = Table(
        title=escape(f"{report.experiment}: dataset"),
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        caption="per class: % of pixels / % of images holding it",
    )
    columns = ["split", "pairs", "aug", "size", "mean±sd", "p1–p99", "empty", *report.classes[1:]]
    for col in columns:
        table.add_column(escape(col), justify="left" if col in ("split", "size") else "right")
    for name, s in report.splits.items():
        if not s.pairs:
            table.add_row(name, "0", *[""] * (len(columns) - 2))
            continue
        sizes = list(s.sizes)
        size = sizes[0] + "×" + "/".join(s.channels) + (f" +{len(sizes) - 1}" if len(sizes) > 1 else "")
        row = [
            name,
            str(s.pairs),
            str(s.augmented),
            size,
            f"{s.intensity['mean']:.0f}±{s.intensity['std']:.0f}",
            f"{s.intensity['p1']}–{s.intensity['p99']}",
            str(len(s.empty_masks)),
        ]
        row += [f"{100 * s.class_pixel_fraction[c]:.2f}/{100 * s.class_presence[c]:.0f}" for c in report.classes[1:]]
        table.add_row(*row)
    out.console().print(table)
    verdict = (
        "[red]leakage found[/]"
        if report.leakage
        else "[green]no leakage[/] (no image in two splits, no augmented copy away from its source)"
    )
    out.console().print(verdict, highlight=False)


def stats_written(report: StatsReport, folder: Path) -> None:
    out.info(f"written: {folder / 'stats.json'}, " + ", ".join(Path(f).name for f in report.figures))


def train_done(result: TrainResult) -> None:
    out.info(
        f"done: {result.epochs_run} epochs in {result.seconds:.0f}s ({result.images_per_second:.2f} img/s, "
        f"{result.precision}), "
        f"best val_loss {result.best_val_loss:.4f} at epoch {result.best_epoch} → {result.run_dir}"
    )


# ---------------------------------------------------------------- evaluate, infer, export, import-config


def evaluation_report(report: EvaluationReport | VolumeReport, folder: Path) -> None:
    if out.is_quiet():
        return
    from rich import box
    from rich.table import Table

    if hasattr(report, "volumes"):
        volume_report(report, folder)
        return

    unit = {"mm": "mm", "pixels": "px"}.get(report.distance_unit, "px/mm")
    table = Table(title=f"{len(report.images)} images scored", box=box.SIMPLE_HEAD)
    table.add_column("class")
    for col in ("Dice", "IoU", "prec.", "recall", f"HD95 {unit}", "pooled Dice", "both empty*"):
        table.add_column(col, justify="right")
    for name, m in report.per_class.items():
        table.add_row(
            escape(name),
            number(m["dice"]),
            number(m["iou"]),
            number(m["precision"]),
            number(m["recall"]),
            number(m["hd95"], 2),
            number(m["dice_pooled"]),
            str(report.both_empty[name]),
        )
    fg = report.foreground
    table.add_row(
        "[bold]mean",
        number(fg["dice"]),
        number(fg["iou"]),
        number(fg["precision"]),
        number(fg["recall"]),
        number(fg["hd95"], 2),
        "",
        "",
    )
    out.console().print(table)
    if report.loss is not None:
        out.info(
            f"legacy metrics: loss {report.loss:.4f}, dice_coef_multiclass {report.dice_coef_multiclass:.4f} "
            "(counts background)"
        )
    rule = "left out of the means" if report.both_empty_rule == "nan" else "scored 1.0"
    out.info(f"*images where the class is in neither truth nor prediction: {rule} (evaluate.both_empty)")
    out.info(f"written: {folder / 'evaluation.csv'}, evaluation.json, per_image.csv")
    if report.page is not None:
        out.info(f"the report, worst cases first: {report.page}")
    for note in report.volume_notes:
        out.warn(note)
    if report.volumes_3d is not None:
        out.info("the test slices stacked back into their source volumes (3D scores in evaluation.json):")
        volume_table(report.volumes_3d)
    if report.cross_validation:
        cross_validation_table(report.cross_validation)
        out.info(f"written: {folder / 'cross_validation.json'}")


def cross_validation_table(cv: dict) -> None:
    """Foreground Dice (mean over images / pooled) of each fold out-of-fold and alone on the test
    split, beside the pooled out-of-fold and the ensemble: what the ensemble bought."""
    from rich import box
    from rich.table import Table

    table = Table(title="cross-validation: foreground Dice, mean over images / pooled", box=box.SIMPLE_HEAD)
    for col in ("", "out-of-fold (valid)", "test split"):
        table.add_column(col, justify="right" if col else "left")

    def both(s: dict) -> str:
        return f"{number(s['foreground_dice'])} / {number(s['foreground_dice_pooled'])}"

    for fold in cv["folds"]:
        table.add_row(f"fold {fold['fold']}", both(fold["out_of_fold"]), both(fold["test"]))
    if "ensemble_test_without_postprocessing" in cv:
        table.add_row("ensemble, no post-processing", "", both(cv["ensemble_test_without_postprocessing"]))
    table.add_row("[bold]pooled out-of-fold / ensemble", both(cv["out_of_fold_pooled"]), both(cv["ensemble_test"]))
    out.console().print(table)
    if (decision := cv.get("postprocessing")) is not None:
        kept = ["largest component of all foreground"] * decision["largest_component_of_foreground"] + [
            f"largest component of {c}" for c in decision["largest_component_of_classes"]
        ]
        before, after = decision["out_of_fold_pooled_dice"]["before"], decision["out_of_fold_pooled_dice"]["after"]
        out.info(
            f"post-processing chosen on the out-of-fold predictions: {', '.join(kept) or 'none'} (pooled Dice "
            f"{', '.join(number(v) for v in before)} → {', '.join(number(v) for v in after)}; what was tried: "
            "postprocessing.json); infer applies it unless --no-postprocessing"
        )


def volume_report(report: VolumeReport, folder: Path) -> None:
    volume_table(report)
    out.info(f"written: {folder / 'evaluation.csv'}, evaluation.json, per_volume.csv")


def volume_table(report: VolumeReport) -> None:
    from rich import box
    from rich.table import Table

    count = len(report.volumes)
    table = Table(title=f"{count} volume{'s' if count != 1 else ''} scored in 3D", box=box.SIMPLE_HEAD)
    table.add_column("class")
    table.add_column("over volumes")
    for col in ("Dice", "IoU", "HD95 mm", "NSD", "vol. diff", "pooled Dice"):
        table.add_column(col, justify="right")
    for name, m in report.per_class.items():
        for i, (label, suffix) in enumerate((("mean", ""), ("median", "_median"))):
            table.add_row(
                escape(name) if i == 0 else "",
                label,
                number(m["dice" + suffix]),
                number(m["iou" + suffix]),
                number(m["hd95_mm" + suffix], 2),
                number(m["nsd" + suffix]),
                number(m["volume_rel_diff" + suffix], 3),
                number(m["dice_pooled"]) if i == 0 else "",
            )
    out.console().print(table)
    tolerances = ", ".join(f"{mm:g} mm ({name})" for name, mm in report.nsd_tolerance_mm.items())
    out.info(f"NSD: boundaries within {tolerances}; vol. diff: (predicted − true) / true")


def gates_met(gates: list[str]) -> None:
    out.info(f"quality gates met: {', '.join(gates)}")


def infer_done(result: InferResult) -> None:
    flat = result.images - result.volumes
    what = [f"{flat} masks"] if flat else []
    if result.volumes:
        what.append(f"{result.volumes} label volume{'s' if result.volumes != 1 else ''} ({result.slices} slices)")
    if result.dicom_segs:
        what[-1] += f" with {result.dicom_segs} DICOM-SEG"
    rate = (
        f"{result.images_per_second:.2f} img/s"
        if not result.volumes
        else f"{result.seconds / result.images:.1f} s each"
    )
    out.info(
        f"{' and '.join(what)} in {result.seconds:.1f}s ({rate}, {result.precision}) with {result.model_dir} "
        f"→ {result.output_dir}"
    )


def report_done(page: Path) -> None:
    out.info(f"written: {page} (open it in a browser; report/ beside it holds its pictures)")


def export_done(result: ExportResult) -> None:
    out.info(
        f"{result.format}: {result.path} (max |probability difference| vs Keras {result.max_abs_diff:.2g} "
        f"on {result.images_checked} images, tolerance {result.tolerance:g}); model.json beside it"
    )


def plan_json(result: PlanResult) -> dict:
    fit = result.fit
    return {
        "experiment": str(result.experiment),
        "fingerprint": str(result.fingerprint_file),
        "groups_csv": str(result.groups_csv) if result.groups_csv else None,
        "classes": [c["name"] for c in result.raw["classes"]],
        "pairing": result.fingerprint.pairing["rule"],
        "folds": result.raw["split"].get("folds"),
        "image": [fit.width, fit.height],
        "base_filters": fit.base_filters,
        "num_layers": fit.layers,
        "batch_size": fit.batch_size,
        "epochs": fit.epochs,
        "fits_budget": fit.fits,
        "budget_seconds": result.budget_s,
        "expected_seconds": round(fit.expected_seconds),
        "commands": result.commands,
    }


def plan_done(result: PlanResult) -> None:
    """What the plan found and chose, in lines short enough for an 80-column terminal."""
    fp, fit, raw = result.fingerprint, result.fit, result.raw
    classes = fp.classes
    if fp.kind != "volumes":
        out.info(
            f"{fp.pairs} pairs, paired by {fp.pairing['rule']}; {len(classes['colors'])} classes "
            f"in {classes['distinct_colors']:,} mask colours:"
        )
        line = ""
        for c in raw["classes"]:  # a few to a line
            item = f"{c['name']} ({','.join(map(str, c['color']))})"
            if line and len(line) + len(item) > 74:
                out.info(f"  {line},")
                line = ""
            line = f"{line}, {item}" if line else item
        out.info(f"  {line}")
        far = classes["far_pixels"] / max(1, classes["total_pixels"])
        out.info(f"  {classes['far_pixels']:,} pixels ({far:.1%}) far from every class colour")
    else:
        out.info(f"{fp.pairs} volume pairs, {fp.samples} slices, {fp.modality}; labels {classes['labels']}")
    folds = raw["split"].get("folds")
    out.info(
        f"model {fit.width}×{fit.height}, {fit.layers} levels, base {fit.base_filters} filters; "
        f"batch {fit.batch_size}, {fit.epochs} epochs" + (f" × {folds} folds" if folds else "")
    )
    out.info(f"  about {fit.expected_seconds / 60:.0f} min of the {result.budget_s / 60:.0f} min budget")
    if not fit.fits:
        out.warn(f"the budget of {result.budget_s / 60:.0f} min is too small for a good model here; raise --budget")
    out.info(f"wrote {result.experiment}")
    out.info(f"  and {result.fingerprint_file.name} in {result.seconds:.0f}s; next:")
    for command in result.commands:
        out.info(f"  {command}")


def import_done(result: ImportResult) -> None:
    for message in result.warnings:
        out.warn(message)
    out.info(
        f"wrote {result.target} ({result.classes} classes, {len(result.warnings)} warnings); "
        f"check it with: flexseg check {result.target}"
    )


# ---------------------------------------------------------------- shipped experiments


def shipped_experiments(shipped: list[ShippedExperiment]) -> None:
    """The list of ``flexseg experiments`` on stdout (one name and its first comment line per
    row: a script reads the first column), the hint on stderr."""
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column("experiment", no_wrap=True)
    table.add_column("what it is")
    for exp in shipped:
        table.add_row(exp.name, escape(exp.description))
    Console(soft_wrap=False).print(table)
    out.info("copy one with: flexseg experiments NAME [--to DIR]")


def experiments_copied(copied: list[tuple[Path, bool]]) -> None:
    for path, written in copied:
        out.info(f"{'wrote' if written else 'already there, the same'}: {path}")


# ---------------------------------------------------------------- demo


def demo_summary(result: DemoResult) -> None:
    report, trained = result.report, result.trained
    stats_report(result.stats)
    evaluation_report(report, trained.run_dir)
    per_class = escape(", ".join(f"{k} {number(v['dice'])}" for k, v in report.per_class.items()))
    out.console().print(
        f"\n[bold]demo finished in {result.seconds / 60:.1f} min[/]\n"
        f"  foreground Dice on the test split: [bold]{number(report.foreground_dice)}[/] ({per_class})\n"
        f"  legacy dice_coef_multiclass (counts background): {report.dice_coef_multiclass:.4f}\n"
        f"  training: {trained.epochs_run} epochs, {trained.images_per_second:.1f} img/s\n"
        f"  run folder: {escape(str(trained.run_dir))}\n"
        + (f"  report (open it in a browser): {escape(str(report.page))}\n" if report.page else "")
        + f"  predicted masks: {escape(str(result.inferred.output_dir))}",
        highlight=False,
    )
    if result.volumes is not None:
        scored = result.volumes
        per_class = ", ".join(
            f"{k} Dice {number(m['dice'])}, HD95 {number(m['hd95_mm'], 2)} mm, NSD {number(m['nsd'])}"
            for k, m in scored.per_class.items()
        )
        out.console().print(
            f"  {len(scored.volumes)} unseen volumes → label volumes in {result.inferred.seconds:.1f}s, "
            f"scored in 3D: {escape(per_class)}",
            highlight=False,
        )
