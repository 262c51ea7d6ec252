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
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

import typer

from flexseg import __version__, views
from flexseg import console as out
from flexseg.errors import FlexsegError, embedded_error

if TYPE_CHECKING:
    from collections.abc import Callable

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

Relative paths are relative to the YAML file. Every key: docs/experiment.md (or `flexseg check` to see one resolved).
"""


class Precision(str, Enum):
    """--precision's choices (flexseg.precision)."""

    auto = "auto"
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


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
    [],
    "--set",
    metavar="KEY=VALUE",
    help="Override one experiment key for this run (repeatable), e.g. --set train.epochs=1.",
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
    if not debug:  # TensorFlow loads where a command first needs it, its start-up chatter hidden
        from flexseg import tfenv

        tfenv.hide_import_chatter()


OS_ERROR_HINTS = {
    errno.ENOSPC: "; free some space (or write elsewhere with --output / run_dir) and run again",
    errno.EACCES: "; check the folder's permissions, or write elsewhere",
    errno.EROFS: "; the file system is read-only: write elsewhere",
    errno.ENOTDIR: "; a file stands where a folder is needed: choose another path",
}


def handles_errors(fn: Callable) -> Callable:
    """Turn FlexsegError (and any other failure) into one line on stderr and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM (flexseg.interrupts)
            _interrupted(e)
        except Exception as e:
            if (interrupt := _interrupt_inside(e)) is not None:
                _interrupted(interrupt)
            if _state["debug"]:
                raise
            message, code = _describe_failure(e)
            views.error(message)
            raise typer.Exit(code) from None

    return wrapper


def _interrupted(e: KeyboardInterrupt) -> None:
    views.interrupted(getattr(e, "signal_name", "SIGINT"))
    raise typer.Exit(getattr(e, "exit_code", 130)) from None


def _interrupt_inside(e: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C or SIGTERM another error carries: a signal that lands while a C extension calls
    back into Python (NumPy inside TensorFlow) comes out as a SystemError whose cause is the
    KeyboardInterrupt."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, KeyboardInterrupt):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


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


def _load(experiment: Path, overrides: list[str]):
    from flexseg import api

    return api.load_experiment(experiment, overrides)


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
    images: Optional[Path] = typer.Option(
        None, "--images", help="Raw images folder (png, jpg, tif, bmp, dcm); default split.images."
    ),
    masks: Optional[Path] = typer.Option(None, "--masks", help="Raw masks folder; default split.masks."),
    output: Optional[Path] = typer.Option(
        None, "--output", help="Folder to write train/valid/test into; default data.root."
    ),
    folds: Optional[int] = typer.Option(
        None,
        "--folds",
        min=2,
        help="K-fold: hold out the test split once, then write fold_0..fold_K-1, each with one fold as valid.",
    ),
    allow_unpaired: bool = typer.Option(
        False, "--allow-unpaired", help="Leave files without a partner out instead of failing."
    ),
    force: bool = typer.Option(False, "--force", help="Replace an output folder written by an earlier flexseg split."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Pair, group and assign, print what would be written; write nothing."
    ),
    overrides: List[str] = SetOption,
) -> None:
    """Split a master folder of raw images and masks into train/valid/test/{images,masks}.

    Pairs by split.pairing (stem, natural, instance_number, regex); keeps each group (patient,
    split.group_pattern or split.groups_csv) in one split; writes masks in the class colours,
    DICOM as 8-bit PNG, and split.json listing every file, its pair, group and split. The
    sources are never modified; the output appears in one rename at the end.
    """
    from flexseg import api

    exp = _load(experiment, overrides)
    plan = api.split_plan(
        exp, images=images, masks=masks, output=output, folds=folds, allow_unpaired=allow_unpaired, force=force
    )
    views.split_plan(exp, plan)
    if dry_run:
        views.split_dry_run(plan)
        return
    views.split_done(exp, plan, api.write_split(exp, plan))


@app.command()
@handles_errors
def plan(
    images: Path = typer.Option(
        ..., "--images", help="Raw images: png, jpg, tif, bmp, DICOM slices or NIfTI volumes.", show_default=False
    ),
    masks: Path = typer.Option(..., "--masks", help="Raw masks (or label volumes).", show_default=False),
    output: Path = typer.Option(..., "--output", "-o", help="The experiment YAML file to write.", show_default=False),
    budget: str = typer.Option(
        "1h",
        "--budget",
        help="Time for split, augment, train (every fold) and evaluate on this machine: 15m, 2h, 1h30m.",
    ),
    name: Optional[str] = typer.Option(None, "--name", help="Experiment name [default: the file's stem]."),
    force: bool = typer.Option(False, "--force", help="Replace an experiment flexseg plan wrote before."),
    as_json: bool = typer.Option(False, "--json", help="Print the plan's summary as JSON on stdout."),
) -> None:
    """Plan a complete experiment from a raw folder: pairing, classes (JPEG-damaged masks
    included), groups, intensity mapping, image size, depth, loss, cross-validation, and the
    batch size and epochs that fit --budget here (a few training steps are measured). Every
    choice is explained in a YAML comment; <stem>.fingerprint.json beside it holds the statistics."""
    from flexseg import api

    result = api.plan(images, masks, output, budget=budget, name=name, force=force)
    if as_json:
        typer.echo(json.dumps(views.plan_json(result), indent=1))
    else:
        views.plan_done(result)


@app.command()
@handles_errors
def augment(
    experiment: Path = ExperimentArg,
    split_name: str = typer.Option(
        "train", "--split", help="The split to augment: train (default) or valid; never test."
    ),
    force: bool = typer.Option(False, "--force", help="Replace augmented copies written earlier (<stem>__augNN.png)."),
    overrides: List[str] = SetOption,
) -> None:
    """Write augment.copies augmented copies of every pair of the train split, with the
    experiment's albumentations transforms, as <stem>__augNN.png beside the originals."""
    from flexseg import api

    for result in api.augment(_load(experiment, overrides), split=split_name, force=force):
        views.augment_done(result)


@app.command()
@handles_errors
def stats(
    experiment: Path = ExperimentArg,
    output: Optional[Path] = typer.Option(
        None, "--output", help="Folder for stats.json and the figures; default <run_dir>/stats."
    ),
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
    from flexseg import api
    from flexseg.errors import QualityGateError

    report = api.stats(_load(experiment, overrides), output=output)
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=1))
    views.stats_report(report)
    views.stats_written(report, report.output)
    if report.errors:
        raise QualityGateError(
            f"{len(report.errors)} problem(s) to fix before training: "
            + "; ".join(p.message for p in report.errors[:3])
            + (" …" if len(report.errors) > 3 else "")
        )


@app.command(epilog=EXAMPLE)
@handles_errors
def train(
    experiment: Path = ExperimentArg,
    overrides: List[str] = SetOption,
    force: bool = typer.Option(False, "--force", help="Replace an earlier run in the run folder."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from its last save point."),
    folds: bool = typer.Option(
        False, "--folds", help="Cross-validation: train every fold of a split made with `split --folds K`."
    ),
    fold: Optional[int] = typer.Option(None, "--fold", help="Train only this fold (0…K-1) of a cross-validation."),
) -> None:
    """Train a FlexUNet on the experiment's train split (validating on valid) into its run folder.

    Writes model.keras (best val_loss, weights only), model.json, experiment.yaml,
    train_metrics/train_losses .csv/.png and epoch_change_infer/ into runs/<name>/. With --folds
    (or --fold N), one complete run per fold in runs/<name>/fold_k/: the run folder is then the
    ensemble of its folds for infer and evaluate.
    """
    from flexseg import api

    exp = _load(experiment, overrides)
    done = api.train(exp, force=force, resume=resume, folds=folds, fold=fold, reporter=views.TrainingBar())
    for result in done.trained.values() if folds or fold is not None else [done]:
        views.train_done(result)


@app.command(epilog=EXAMPLE)
@handles_errors
def evaluate(
    experiment: Path = ExperimentArg,
    overrides: List[str] = SetOption,
    pred: Optional[Path] = typer.Option(
        None,
        "--pred",
        help="Score this folder of predicted masks instead of running the model (needs --truth).",
        show_default=False,
    ),
    truth: Optional[Path] = typer.Option(
        None, "--truth", help="The truth masks for --pred (paired by file stem).", show_default=False
    ),
    output: Optional[Path] = typer.Option(
        None,
        "--output",
        help="With --pred: where the reports go [default: <run_dir>/evaluate/<pred folder>].",
        show_default=False,
    ),
    fail_under: List[str] = typer.Option(
        [],
        "--fail-under",
        metavar="METRIC=VALUE",
        help="Exit 1 when a score is lower, e.g. dice=0.8, dice_lesion=0.7, recall_pooled=0.9. Repeatable.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON on stdout."),
) -> None:
    """Score the trained model on the test split (or --pred masks against --truth): Dice, IoU,
    precision, recall and HD95 per image and foreground class, at each image's own size, plus the
    legacy loss and dice_coef_multiclass. Writes evaluation.csv, evaluation.json, per_image.csv and
    report.html (worst cases first, with their errors drawn)."""
    from flexseg import api
    from flexseg.errors import QualityGateError
    from flexseg.evaluation.slices import failed_gates

    report = api.evaluate(_load(experiment, overrides), pred=pred, truth=truth, output=output)
    folder = report.output
    failures = failed_gates(report, fail_under)
    if as_json:
        typer.echo(json.dumps({**report.to_json(), "failed_gates": failures}, indent=2))
    views.evaluation_report(report, folder)
    if failures:
        raise QualityGateError("quality gate failed: " + "; ".join(failures))
    if fail_under:
        views.gates_met(fail_under)


@app.command()
@handles_errors
def infer(
    experiment: Optional[Path] = typer.Argument(
        None, help="Experiment YAML; its run folder and infer.images are used. Optional.", show_default=False
    ),
    model: Optional[Path] = typer.Option(
        None, "--model", help="Run folder of a trained model (holds model.keras, model.json)."
    ),
    images: List[Path] = typer.Option(
        [],
        "--images",
        help="A folder of images (png, jpg, tif, bmp, dcm) or volumes (nii, nii.gz), or one file. Repeatable.",
        show_default=False,
    ),
    output: Optional[Path] = typer.Option(None, "--output", help="Folder for the masks."),
    tta: bool = typer.Option(False, "--tta", help="Test-time augmentation: average the predictions of the four flips."),
    tiles: bool = typer.Option(
        False,
        "--tiles",
        help="Predict images larger than the model input by overlapping "
        "windows at full resolution, blended with Gaussian weights (no resize).",
    ),
    overlap: float = typer.Option(
        0.5, "--overlap", min=0.0, max=0.9, help="With --tiles: overlap of neighbouring windows."
    ),
    largest_component: bool = typer.Option(
        False, "--largest-component", help="Per class, keep only the largest connected component."
    ),
    min_size: int = typer.Option(
        0, "--min-size", min=0, help="Drop connected components smaller than this many pixels."
    ),
    postprocessing: bool = typer.Option(
        True,
        "--postprocessing/--no-postprocessing",
        help="Apply the post-processing a cross-validated run chose by evidence (its postprocessing.json).",
    ),
    overlay: bool = typer.Option(
        False, "--overlay", help="Also write overlay/<name>.png: the image with the classes blended in their colours."
    ),
    probabilities: bool = typer.Option(
        False,
        "--probabilities",
        help="Also write probabilities/<name>.npz: the per-class probabilities (float16, H×W×classes).",
    ),
    volumes: bool = typer.Option(
        False,
        "--volumes",
        help="Group the DICOM files into series (by SeriesInstanceUID, ordered along the slice normal) and "
        "write one label volume per series, <SeriesInstanceUID>.nii.gz.",
    ),
    dicom_seg: bool = typer.Option(
        False,
        "--dicom-seg",
        help="With --volumes: also write <SeriesInstanceUID>.seg.dcm, a DICOM-SEG referencing the series "
        "(needs: pip install 'flexseg[dicom-seg]').",
    ),
    batch_size: int = typer.Option(4, "--batch-size", min=1, help="Images (or windows) per prediction call."),
    precision: Optional[Precision] = typer.Option(
        None,
        "--precision",
        help="Compute in this type (weights cast at load). auto (default; infer.precision): bfloat16 on CPUs "
        "with AVX512-BF16/AMX and GPUs from compute capability 8.0, float16 on older GPUs, else float32.",
        show_default=False,
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite masks that already exist in the output folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
    overrides: List[str] = SetOption,
) -> None:
    """Predict masks for folders or files of images; each mask is a palette PNG in the class
    colours, at the image's original size, named after the image (x.jpg → x.png). DICOM slices
    are windowed as flexseg split does. A NIfTI volume (x.nii.gz) gets a label volume x.nii.gz of
    class indices on its own grid; with --volumes, so does each DICOM series (and with --dicom-seg
    a DICOM-SEG object that a PACS viewer shows over the series).

    The model: --model RUN_DIR, else the experiment's run folder, else $FLEXSEG_MODEL, else the only
    trained run under ./runs/. The output: --output, else the experiment's infer.output, else
    <run>/mini_test_output for the experiment's own images and <run>/infer/<folder name> for others.
    """
    from flexseg import api

    exp = _load(experiment, overrides) if experiment is not None else None
    options = api.InferOptions(
        tta=tta,
        tiles=tiles,
        overlap=overlap,
        largest_component=largest_component,
        min_size=min_size,
        overlay=overlay,
        probabilities=probabilities,
        volumes=volumes,
        dicom_seg=dicom_seg,
        postprocessing=postprocessing,
    )
    result = api.infer(
        exp,
        model=model,
        images=images,
        output=output,
        batch_size=batch_size,
        force=force,
        options=options,
        precision=precision.value if precision else None,
    )
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=1))
    views.infer_done(result)


@app.command()
@handles_errors
def export(
    run_dir: Path = typer.Argument(
        ..., help="Run folder of a trained model (holds model.keras, model.json).", show_default=False
    ),
    fmt: str = typer.Option(..., "--format", help="savedmodel, tflite or onnx (onnx: pip install -e '.[onnx]')."),
    output: Optional[Path] = typer.Option(
        None, "--output", help="Folder for the export [default: <run>/export/<format>]."
    ),
    tolerance: float = typer.Option(
        1e-4, "--tolerance", min=0.0, help="Largest allowed probability difference from the Keras model."
    ),
    force: bool = typer.Option(False, "--force", help="Replace an earlier export."),
) -> None:
    """Export the trained model for another runtime: a SavedModel (serving signature `serve`, input
    `image`), TFLite or ONNX. The export is run on a few images and compared with the Keras model;
    it fails when the probabilities differ by more than --tolerance. model.json goes beside it."""
    from flexseg import api

    views.export_done(api.export(run_dir, fmt, output=output, tolerance=tolerance, force=force))


@app.command()
@handles_errors
def report(
    run_dir: Path = typer.Argument(..., help="Run folder of a trained model or cross-validation.", show_default=False),
) -> None:
    """Write report.html into the run folder: the run at a glance, training curves, scores per
    class with their spread, the worst cases first with their errors drawn, every case in a
    sortable table. Offline: open it from anywhere with its report/ folder beside it. evaluate
    writes it too, with the pictures of the cases."""
    from flexseg import api

    views.report_done(api.report(run_dir))


@app.command("import-config")
@handles_errors
def import_config(
    config: Path = typer.Argument(..., help="A legacy TensorFlowFlexUNet train_eval_infer.config.", show_default=False),
    output: Optional[Path] = typer.Option(
        None, "-o", "--output", help="Experiment file to write [default: experiment.yaml beside the config]."
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing experiment file."),
) -> None:
    """Convert a TensorFlowFlexUNet train_eval_infer.config into a flexseg experiment YAML.
    Values are read as Python literals (never evaluated as code); every key flexseg does not
    take is listed as a warning; relative paths stay relative, to the new file."""
    from flexseg import api

    views.import_done(api.import_config(config, output, force=force))


@app.command()
@handles_errors
def demo(
    experiment: Optional[Path] = typer.Argument(
        None, help="A demo experiment of your own [default: flexseg's, writing under --output].", show_default=False
    ),
    output: Optional[Path] = typer.Option(
        None, "--output", help="Folder for data/ and runs/ of the shipped demo [default: the current folder]."
    ),
    volumes: bool = typer.Option(
        False, "--volumes", help="Raw data as NIfTI volumes; unseen volumes get label volumes, scored in 3D."
    ),
    overrides: List[str] = SetOption,
) -> None:
    """Run the whole pipeline on a synthetic CT-like dataset made on the spot (no download):
    make raw data → split (by patient) → augment → stats → train → evaluate → infer, then print
    the foreground Dice and where outputs are. Writes data/ and runs/ under --output (default the
    current folder); rewrites only its own data and run folders."""
    from flexseg import api

    views.demo_summary(
        api.demo(experiment, output=output, volumes=volumes, overrides=overrides, reporter=views.TrainingBar())
    )


@app.command()
@handles_errors
def experiments(
    names: List[str] = typer.Argument(None, help="Shipped experiments to copy; none: list them.", show_default=False),
    to: Path = typer.Option(Path("experiments"), "--to", help="Folder to copy them into."),
) -> None:
    """List the experiments shipped with flexseg, or copy some into --to (default ./experiments,
    beside which their relative paths expect data/ and runs/). A file already there is never replaced."""
    from flexseg.resources import copy_experiments, shipped_experiments

    if not names:
        views.shipped_experiments(shipped_experiments())
        return
    views.experiments_copied(copy_experiments(list(names), to))


def main() -> None:
    from flexseg import interrupts, tfenv

    tfenv.quiet_tensorflow_logging()
    tfenv.prepare()
    # no "[ WARN:0@...]" lines from OpenCV for broken files: flexseg reports them (read when cv2 loads)
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    interrupts.install()
    try:
        app(prog_name="flexseg")
        code = 0
    except SystemExit as e:
        code = e.code
    except KeyboardInterrupt as e:  # before or after a command ran
        views.interrupted(getattr(e, "signal_name", "SIGINT"))
        code = getattr(e, "exit_code", 130)
    _exit(code)


def _exit(code: int) -> None:
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
