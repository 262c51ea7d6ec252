"""The flexseg command line: one thin function per command over the library.

Human output goes to stderr; machine output (--json) to stdout. A FlexsegError becomes one
line and its exit code; --debug shows the traceback instead.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape

from flexseg import __version__
from flexseg import console as out
from flexseg.errors import ConfigError, FlexsegError, embedded_error

EXAMPLE = """\
Example experiment (experiments/nbm.yaml, shortened):

  name: nbm
  classes:                       # ordered; the first is the background
    - {name: background, color: [0, 0, 0]}
    - {name: lesion,     color: [255, 255, 255]}
  image: {width: 512, height: 512, channels: 3}
  model: {base_filters: 16, base_kernels: [9, 9], num_layers: 8, dropout_rate: 0.04}
  train: {learning_rate: 7.0e-5, clipvalue: 0.4, batch_size: 2, epochs: 100}
  data:  {root: ../dataset/NBM}  # holds train/ valid/ test/, each with images/ and masks/
  infer: {images: ./mini_test/images}

Relative paths are relative to the YAML file. See README.md for every key.
"""

app = typer.Typer(
    name="flexseg",
    help="Train, evaluate and run 2D multiclass FlexUNet segmentation models from YAML experiments.\n\n"
    "Typical use: flexseg split, augment, stats, train, evaluate experiments/nbm.yaml; "
    "flexseg infer --images DIR.\n\n"
    "Exit codes: 0 ok, 1 quality gate failed, 2 usage or experiment error, 3 data error, 4 run or model error.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)

_state = {"debug": False}

ExperimentArg = typer.Argument(..., help="Experiment YAML file, e.g. experiments/nbm.yaml.", show_default=False)
SetOption = typer.Option(
    [], "--set", metavar="KEY=VALUE", help="Override one experiment key for this run (repeatable), e.g. --set train.epochs=1."
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"flexseg {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only warnings and errors on stderr."),
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback on errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    _state["debug"] = debug
    out.configure(quiet=quiet)


OS_ERROR_HINTS = {
    errno.ENOSPC: "; free some space (or write elsewhere with --output / run_dir) and run again",
    errno.EACCES: "; check the folder's permissions, or write elsewhere",
    errno.EROFS: "; the file system is read-only: write elsewhere",
    errno.ENOTDIR: "; a file stands where a folder is needed: choose another path",
}


def handles_errors(fn):
    """Turn FlexsegError (and any other failure) into one line on stderr and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM (flexseg.interrupts)
            out.console().print(f"[red]interrupted[/] ({getattr(e, 'signal_name', 'SIGINT')})", highlight=False)
            raise typer.Exit(getattr(e, "exit_code", 130)) from None
        except Exception as e:
            if _state["debug"]:
                raise
            message, code = _describe_failure(e)
            out.console().print(f"[red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
            raise typer.Exit(code) from None

    return wrapper


def _describe_failure(e: Exception) -> tuple[str, int]:
    """One line and an exit code: a flexseg error as itself (also when tf.data wrapped it in a
    TensorFlow error), an OS error with its path and what to do, anything else as unexpected."""
    inner = e if isinstance(e, FlexsegError) else embedded_error(e)
    if inner is not None:
        return str(inner), inner.exit_code
    if isinstance(e, OSError):  # the disk, not flexseg: a full disk, a read-only or blocked path
        where = f"{e.filename}: " if e.filename else ""
        return where + (e.strerror or str(e)) + OS_ERROR_HINTS.get(e.errno, ""), 4
    return f"unexpected {type(e).__name__}: {e} (rerun with --debug for the traceback)", 4


def _needs_tensorflow() -> None:
    if not _state["debug"]:
        from flexseg.tfenv import import_tensorflow_quietly

        import_tensorflow_quietly()


def _load(experiment: Path, overrides: list[str]):
    from flexseg.config import load_experiment

    return load_experiment(experiment, overrides)


@app.command(epilog=EXAMPLE)
@handles_errors
def check(experiment: Path = ExperimentArg, overrides: List[str] = SetOption) -> None:
    """Validate an experiment and print it resolved (absolute paths, defaults filled in) as YAML."""
    from flexseg.config import dump_experiment

    typer.echo(dump_experiment(_load(experiment, overrides)), nl=False)


@app.command()
@handles_errors
def split(
    experiment: Path = ExperimentArg,
    images: Optional[Path] = typer.Option(None, "--images", help="Raw images folder (png, jpg, tif, bmp, dcm); default split.images."),
    masks: Optional[Path] = typer.Option(None, "--masks", help="Raw masks folder; default split.masks."),
    output: Optional[Path] = typer.Option(None, "--output", help="Folder to write train/valid/test into; default data.root."),
    folds: Optional[int] = typer.Option(None, "--folds", min=2, help="K-fold: hold out the test split once, then write fold_0..fold_K-1, each with one fold as valid."),
    allow_unpaired: bool = typer.Option(False, "--allow-unpaired", help="Leave files without a partner out instead of failing."),
    force: bool = typer.Option(False, "--force", help="Replace an output folder written by an earlier flexseg split."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Pair, group and assign, print what would be written; write nothing."),
    overrides: List[str] = SetOption,
) -> None:
    """Split a master folder of raw images and masks into train/valid/test/{images,masks}.

    Pairs by split.pairing (stem, natural, instance_number, regex); keeps each group (patient,
    split.group_pattern or split.groups_csv) in one split; writes masks in the class colours,
    DICOM as 8-bit PNG, and split.json listing every file, its pair, group and split. The
    sources are never modified; the output appears in one rename at the end.
    """
    from flexseg.commands.split import plan_split, write_split

    exp = _load(experiment, overrides)
    plan = plan_split(exp, images, masks, output, folds=folds, allow_unpaired=allow_unpaired, force=force)
    out.info(f"paired {len(plan.pairing.pairs)} images from {plan.images_dir} with masks from {plan.masks_dir} "
             f"(split.pairing: {exp.split.pairing}); groups: {plan.grouping}")
    _print_split_plan(plan)
    if dry_run:
        for (image, mask), group, place in list(zip(plan.pairing.pairs, plan.groups, plan.places))[:8]:
            out.info(f"  {place:>6}  {image.name}  ↔  {mask.name}  (group {group})")
        out.info(f"dry run: would write {len(plan.pairing.pairs)} pairs into {plan.output}; nothing written")
        return
    result = write_split(exp, plan)
    for how, n in result.dicom_notes.items():
        example = next(i for i, m in plan.pairing.pairs if i.suffix.lower() == ".dcm")
        out.info(f"{n} DICOM image(s) → 8-bit PNG using the {how} (e.g. {example.name})")
    warning = result.audit.summary(exp.data.mask_tolerance)
    if warning:
        out.warn(warning.replace("data.mask_tolerance", "split.mask_values / data.mask_tolerance"))
    out.info(f"wrote {sum(result.counts.values())} pairs in {result.seconds:.1f}s → {result.output} (manifest split.json)")


def _print_split_plan(plan) -> None:
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


@app.command()
@handles_errors
def augment(
    experiment: Path = ExperimentArg,
    split_name: str = typer.Option("train", "--split", help="The split to augment: train (default) or valid; never test."),
    force: bool = typer.Option(False, "--force", help="Replace augmented copies written earlier (<stem>__augNN.png)."),
    overrides: List[str] = SetOption,
) -> None:
    """Write augment.copies augmented copies of every pair of the train split, with the
    experiment's albumentations transforms, as <stem>__augNN.png beside the originals."""
    from flexseg.commands.augment import augment as run_augment

    result = run_augment(_load(experiment, overrides), split_name, force=force)
    out.info(f"{result.written} augmented pairs from {result.sources} originals in {result.seconds:.1f}s "
             f"({result.pairs_per_second:.1f} pairs/s) → {result.split_dir}")


@app.command()
@handles_errors
def stats(
    experiment: Path = ExperimentArg,
    output: Optional[Path] = typer.Option(None, "--output", help="Folder for stats.json and the figures; default <run_dir>/stats."),
    as_json: bool = typer.Option(False, "--json", help="Print everything as JSON on stdout."),
    overrides: List[str] = SetOption,
) -> None:
    """Describe the split dataset and find its problems before training.

    Counts per split, class pixel fractions and presence, empty masks, sizes, channels,
    intensity statistics; unpaired files, off-colour mask pixels and leakage (identical images
    in two splits, augmented copies whose source is in another split). Writes stats.json,
    split_counts.png, train_images_sample.png and train_masks_sample.png. Exits with 1 when
    it finds an error-level problem (leakage, unpaired files, size mismatch, empty train split).
    """
    from flexseg.commands.stats import report_dataset
    from flexseg.errors import QualityGateError

    report, folder = report_dataset(_load(experiment, overrides), output)
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=1))
    _print_stats(report)
    out.info(f"written: {folder / 'stats.json'}, " + ", ".join(Path(f).name for f in report.figures))
    if report.errors:
        raise QualityGateError(f"{len(report.errors)} problem(s) to fix before training: "
                               + "; ".join(p.message for p in report.errors[:3]) + (" …" if len(report.errors) > 3 else ""))


def _print_stats(report) -> None:
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

    table = Table(title=escape(f"{report.experiment}: dataset"), box=box.SIMPLE_HEAD, pad_edge=False,
                  caption="per class: % of pixels / % of images holding it")
    columns = ["split", "pairs", "aug", "size", "mean±sd", "p1–p99", "empty", *report.classes[1:]]
    for col in columns:
        table.add_column(escape(col), justify="left" if col in ("split", "size") else "right")
    for name, s in report.splits.items():
        if not s.pairs:
            table.add_row(name, "0", *[""] * (len(columns) - 2))
            continue
        sizes = list(s.sizes)
        size = sizes[0] + "×" + "/".join(s.channels) + (f" +{len(sizes) - 1}" if len(sizes) > 1 else "")
        row = [name, str(s.pairs), str(s.augmented), size, f"{s.intensity['mean']:.0f}±{s.intensity['std']:.0f}",
               f"{s.intensity['p1']}–{s.intensity['p99']}", str(len(s.empty_masks))]
        row += [f"{100 * s.class_pixel_fraction[c]:.2f}/{100 * s.class_presence[c]:.0f}" for c in report.classes[1:]]
        table.add_row(*row)
    out.console().print(table)
    verdict = "[red]leakage found[/]" if report.leakage else "[green]no leakage[/] (no image in two splits, no augmented copy away from its source)"
    out.console().print(verdict, highlight=False)


@app.command(epilog=EXAMPLE)
@handles_errors
def train(
    experiment: Path = ExperimentArg,
    overrides: List[str] = SetOption,
    force: bool = typer.Option(False, "--force", help="Replace an earlier run in the run folder."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from its last finished epoch."),
) -> None:
    """Train a FlexUNet on the experiment's train split (validating on valid) into its run folder.

    Writes model.keras (best val_loss, weights only), model.json, experiment.yaml,
    train_metrics/train_losses .csv/.png and epoch_change_infer/ into runs/<name>/.
    """
    _needs_tensorflow()
    from flexseg.commands.train import train as run_training

    result = run_training(_load(experiment, overrides), force=force, resume=resume)
    out.info(
        f"done: {result.epochs_run} epochs in {result.seconds:.0f}s ({result.images_per_second:.2f} img/s), "
        f"best val_loss {result.best_val_loss:.4f} at epoch {result.best_epoch} → {result.run_dir}"
    )


@app.command(epilog=EXAMPLE)
@handles_errors
def evaluate(
    experiment: Path = ExperimentArg,
    overrides: List[str] = SetOption,
    pred: Optional[Path] = typer.Option(None, "--pred", help="Score this folder of predicted masks instead of "
                                        "running the model (needs --truth).", show_default=False),
    truth: Optional[Path] = typer.Option(None, "--truth", help="The truth masks for --pred (paired by file stem).",
                                         show_default=False),
    output: Optional[Path] = typer.Option(None, "--output", help="With --pred: where the reports go "
                                          "[default: <run_dir>/evaluate/<pred folder>].", show_default=False),
    fail_under: List[str] = typer.Option([], "--fail-under", metavar="METRIC=VALUE",
                                         help="Exit 1 when a score is lower, e.g. dice=0.8, dice_lesion=0.7, "
                                              "recall_pooled=0.9. Repeatable."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON on stdout."),
) -> None:
    """Score the trained model on the test split (or --pred masks against --truth): Dice, IoU,
    precision, recall and HD95 per image and foreground class, at each image's own size, plus the
    seed's loss and dice_coef_multiclass. Writes evaluation.csv, evaluation.json and per_image.csv."""
    from flexseg.commands import evaluate as evaluation
    from flexseg.errors import QualityGateError

    exp = _load(experiment, overrides)
    if (pred is None) != (truth is None):
        raise ConfigError("--pred and --truth go together: the predicted masks and the truth masks to score them against")
    if output is not None and pred is None:
        raise ConfigError("--output is for --pred/--truth; a model's evaluation goes into its run folder")
    if pred is not None:
        report, folder = evaluation.evaluate_folders(exp, pred.resolve(), truth.resolve(), output)
    else:
        _needs_tensorflow()
        report, folder = evaluation.evaluate(exp), exp.resolved_run_dir
    failures = evaluation.failed_gates(report, fail_under)
    if as_json:
        typer.echo(json.dumps({**report.to_json(), "failed_gates": failures}, indent=2))
    _print_report(report, folder)
    if failures:
        raise QualityGateError("quality gate failed: " + "; ".join(failures))
    if fail_under and not out.is_quiet():
        out.info(f"quality gates met: {', '.join(fail_under)}")


def _print_report(report, folder: Path) -> None:
    if out.is_quiet():
        return
    from rich import box
    from rich.table import Table

    unit = {"mm": "mm", "pixels": "px"}.get(report.distance_unit, "px/mm")
    table = Table(title=f"{len(report.images)} images scored", box=box.SIMPLE_HEAD)
    table.add_column("class")
    for col in ("Dice", "IoU", "prec.", "recall", f"HD95 {unit}", "pooled Dice", "both empty*"):
        table.add_column(col, justify="right")
    for name, m in report.per_class.items():
        table.add_row(escape(name), _f(m["dice"]), _f(m["iou"]), _f(m["precision"]), _f(m["recall"]), _f(m["hd95"], 2),
                      _f(m["dice_pooled"]), str(report.both_empty[name]))
    fg = report.foreground
    table.add_row("[bold]mean", _f(fg["dice"]), _f(fg["iou"]), _f(fg["precision"]), _f(fg["recall"]),
                  _f(fg["hd95"], 2), "", "")
    out.console().print(table)
    if report.loss is not None:
        out.info(f"seed metrics: loss {report.loss:.4f}, dice_coef_multiclass {report.dice_coef_multiclass:.4f} "
                 "(counts background)")
    rule = "left out of the means" if report.both_empty_rule == "nan" else "scored 1.0"
    out.info(f"*images where the class is in neither truth nor prediction: {rule} (evaluate.both_empty)")
    out.info(f"written: {folder / 'evaluation.csv'}, evaluation.json, per_image.csv")


def _f(v, digits: int = 4) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


@app.command()
@handles_errors
def infer(
    experiment: Optional[Path] = typer.Argument(
        None, help="Experiment YAML; its run folder and infer.images are used. Optional.", show_default=False
    ),
    model: Optional[Path] = typer.Option(None, "--model", help="Run folder of a trained model (holds model.keras, model.json)."),
    images: List[Path] = typer.Option([], "--images", help="A folder of images (png, jpg, tif, bmp, dcm) or one "
                                      "image file. Repeatable.", show_default=False),
    output: Optional[Path] = typer.Option(None, "--output", help="Folder for the masks."),
    tta: bool = typer.Option(False, "--tta", help="Test-time augmentation: average the predictions of the four flips."),
    tiles: bool = typer.Option(False, "--tiles", help="Predict images larger than the model input by overlapping "
                               "windows at full resolution, blended with Gaussian weights (no resize)."),
    overlap: float = typer.Option(0.5, "--overlap", min=0.0, max=0.9, help="With --tiles: overlap of neighbouring windows."),
    largest_component: bool = typer.Option(False, "--largest-component",
                                           help="Per class, keep only the largest connected component."),
    min_size: int = typer.Option(0, "--min-size", min=0, help="Drop connected components smaller than this many pixels."),
    overlay: bool = typer.Option(False, "--overlay", help="Also write overlay/<name>.png: the image with the classes "
                                 "blended in their colours."),
    probabilities: bool = typer.Option(False, "--probabilities", help="Also write probabilities/<name>.npz: the "
                                       "per-class probabilities (float16, H×W×classes)."),
    batch_size: int = typer.Option(4, "--batch-size", min=1, help="Images (or windows) per prediction call."),
    force: bool = typer.Option(False, "--force", help="Overwrite masks that already exist in the output folder."),
    overrides: List[str] = SetOption,
) -> None:
    """Predict masks for folders or files of images; each mask is a palette PNG in the class
    colours, at the image's original size, named after the image (x.jpg → x.png). DICOM slices
    are windowed as flexseg split does.

    The model: --model RUN_DIR, else the experiment's run folder, else $FLEXSEG_MODEL, else the only
    trained run under ./runs/. The output: --output, else the experiment's infer.output, else
    <run>/mini_test_output for the experiment's own images and <run>/infer/<folder name> for others.
    """
    _needs_tensorflow()
    from flexseg.commands.infer import InferOptions, resolve_images, resolve_output
    from flexseg.commands.infer import infer as run_inference
    from flexseg.model.store import check_model_fits, find_model_dir, read_card

    exp = _load(experiment, overrides) if experiment is not None else None
    model_dir = find_model_dir(model, exp.resolved_run_dir if exp else None)
    files = resolve_images(images, exp.infer.images if exp else None)
    if exp is not None:
        check_model_fits(read_card(model_dir), exp, model_dir)
    output = resolve_output(output, model_dir, images, exp)
    options = InferOptions(tta=tta, tiles=tiles, overlap=overlap, largest_component=largest_component,
                           min_size=min_size, overlay=overlay, probabilities=probabilities)
    result = run_inference(model_dir, files, output, batch_size=batch_size, force=force, options=options)
    out.info(
        f"{result.images} masks in {result.seconds:.1f}s ({result.images_per_second:.2f} img/s) "
        f"with {model_dir} → {result.output_dir}"
    )


@app.command()
@handles_errors
def export(
    run_dir: Path = typer.Argument(..., help="Run folder of a trained model (holds model.keras, model.json).",
                                   show_default=False),
    fmt: str = typer.Option(..., "--format", help="savedmodel, tflite or onnx (onnx: pip install -e '.[onnx]')."),
    output: Optional[Path] = typer.Option(None, "--output", help="Folder for the export [default: <run>/export/<format>]."),
    tolerance: float = typer.Option(1e-4, "--tolerance", min=0.0,
                                    help="Largest allowed probability difference from the Keras model."),
    force: bool = typer.Option(False, "--force", help="Replace an earlier export."),
) -> None:
    """Export the trained model for another runtime: a SavedModel (serving signature `serve`, input
    `image`), TFLite or ONNX. The export is run on a few images and compared with the Keras model;
    it fails when the probabilities differ by more than --tolerance. model.json goes beside it."""
    _needs_tensorflow()
    from flexseg.commands.export import export as run_export

    result = run_export(run_dir, fmt, output, tolerance=tolerance, force=force)
    out.info(f"{result.format}: {result.path} (max |probability difference| vs Keras {result.max_abs_diff:.2g} "
             f"on {result.images_checked} images, tolerance {result.tolerance:g}); model.json beside it")


@app.command("import-config")
@handles_errors
def import_config(
    config: Path = typer.Argument(..., help="The seed's train_eval_infer.config.", show_default=False),
    output: Optional[Path] = typer.Option(None, "-o", "--output",
                                          help="Experiment file to write [default: experiment.yaml beside the config]."),
    force: bool = typer.Option(False, "--force", help="Replace an existing experiment file."),
) -> None:
    """Convert a TensorFlowFlexUNet train_eval_infer.config into a flexseg experiment YAML.
    Values are read as Python literals (never evaluated as code); every key flexseg does not
    take is listed as a warning; relative paths stay relative, to the new file."""
    from flexseg.commands.import_config import import_seed_config
    from flexseg.config import experiment_yaml
    from flexseg.errors import RunError
    from flexseg.fsutil import atomic_write_text

    target = output or config.parent / "experiment.yaml"
    if target.exists() and not force:
        raise RunError(f"{target} already exists; pass --force to replace it, or choose -o FILE")
    imported = import_seed_config(config, target)
    for message in imported.warnings:
        out.warn(message)
    header = (f"Imported by `flexseg import-config` from {config.name}.\nClass names are placeholders "
              "(background, class1, ...): rename them.")
    atomic_write_text(target, experiment_yaml(imported.experiment, header))
    out.info(f"wrote {target} ({len(imported.experiment['classes'])} classes, {len(imported.warnings)} warnings); "
             f"check it with: flexseg check {target}")


@app.command()
@handles_errors
def demo(
    experiment: Path = typer.Argument(Path("experiments/demo.yaml"), help="The demo experiment."),
    overrides: List[str] = SetOption,
) -> None:
    """Run the whole pipeline on a synthetic CT-like dataset made on the spot (no download):
    make raw data → split (by patient) → augment → stats → train → evaluate → infer, then print
    the foreground Dice and where outputs are. The demo rewrites its own data and run folders."""
    _needs_tensorflow()
    from flexseg.commands.demo import run_demo

    result = run_demo(_load(experiment, overrides), experiment)
    report, trained = result.report, result.trained
    _print_stats(result.stats)
    _print_report(report, trained.run_dir)
    per_class = escape(", ".join(f"{k} {_f(v['dice'])}" for k, v in report.per_class.items()))
    out.console().print(
        f"\n[bold]demo finished in {result.seconds / 60:.1f} min[/]\n"
        f"  foreground Dice on the test split: [bold]{_f(report.foreground_dice)}[/] ({per_class})\n"
        f"  seed dice_coef_multiclass (counts background): {report.dice_coef_multiclass:.4f}\n"
        f"  training: {trained.epochs_run} epochs, {trained.images_per_second:.1f} img/s\n"
        f"  run folder: {escape(str(trained.run_dir))}\n"
        f"  predicted masks: {escape(str(result.inferred.output_dir))}",
        highlight=False,
    )


def main() -> None:
    from flexseg import interrupts

    interrupts.install()
    try:
        app(prog_name="flexseg")
        code = 0
    except SystemExit as e:
        code = e.code
    except KeyboardInterrupt as e:  # before or after a command ran
        out.console().print(f"[red]interrupted[/] ({getattr(e, 'signal_name', 'SIGINT')})", highlight=False)
        code = getattr(e, "exit_code", 130)
    _exit(code)


def _exit(code) -> None:
    """End the process. Once TensorFlow is loaded, without running the interpreter's teardown: its
    input-pipeline threads, still calling into Python after an error, made a finished process
    abort ("terminate called without an active exception", rc 134) or hang. Every file flexseg
    writes is complete and renamed into place by now; only the standard streams need flushing."""
    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    code = 0 if code is None else int(code)
    if "tensorflow" not in sys.modules:
        sys.exit(code)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
