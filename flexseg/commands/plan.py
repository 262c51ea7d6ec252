"""flexseg plan: a raw folder of images and masks → a complete, commented experiment.

The fingerprint of the folder (planning.fingerprint) goes through the planning rules
(planning.rules); the model's size, batch and epochs are fitted to the time budget by measuring
training steps on this machine (planning.measure). Written beside each other: the experiment,
``<stem>.fingerprint.json`` and, for DICOM slices of several patients, ``<stem>.groups.csv``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from flexseg import __version__
from flexseg.config import commented_experiment_yaml, validate_experiment
from flexseg.errors import ConfigError, RunError
from flexseg.fsutil import atomic_write_text
from flexseg.planning import rules
from flexseg.runs import folder_lock

if TYPE_CHECKING:
    from collections.abc import Callable

    from flexseg.planning.fingerprint import Fingerprint

PLANNED_MARK = "# Planned by flexseg plan"  # the first line of every planned experiment
AUGMENT_TRANSFORMS = [
    {"HorizontalFlip": {"p": 0.5}},
    {"Affine": {"scale": [0.85, 1.15], "rotate": [-15, 15], "translate_percent": [-0.05, 0.05], "p": 0.8}},
    {
        "OneOf": {
            "p": 0.5,
            "transforms": [
                {"ElasticTransform": {"alpha": 40, "sigma": 7, "p": 1.0}},
                {"GridDistortion": {"num_steps": 5, "distort_limit": 0.2, "p": 1.0}},
            ],
        }
    },
    {"RandomBrightnessContrast": {"brightness_limit": 0.15, "contrast_limit": 0.15, "p": 0.5}},
    {"RandomGamma": {"gamma_limit": [80, 120], "p": 0.5}},
]


@dataclass
class PlanResult:
    experiment: Path
    fingerprint_file: Path
    fingerprint: Fingerprint
    fit: rules.BudgetFit
    raw: dict
    budget_s: float
    seconds: float
    groups_csv: Path | None = None
    commands: list[str] = field(default_factory=list)


def parse_budget(text: str) -> float:
    """``90s``, ``15m``, ``2h`` or ``1h30m`` → seconds (a ConfigError for anything else)."""
    m = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s)?\s*", text or "")
    seconds = 0.0
    if m and any(m.groups()):
        h, mi, s = (float(v) if v else 0.0 for v in m.groups())
        seconds = h * 3600 + mi * 60 + s
    if seconds < 60:
        raise ConfigError(f"--budget {text[:40]!r}: give a time of at least a minute, e.g. 15m, 2h or 1h30m")
    return seconds


def plan(
    images: Path,
    masks: Path,
    output: Path,
    *,
    budget_s: float = rules.DEFAULT_BUDGET_S,
    name: str | None = None,
    force: bool = False,
    measure: Callable | None = None,
) -> PlanResult:
    """Plan an experiment for the raw folders ``images`` and ``masks`` and write it to ``output``
    (a YAML file), with ``<stem>.fingerprint.json`` beside it. ``measure(raw, w, h, base, batch,
    layers)`` gives the seconds of a training step (default: measured here, planning.measure).
    An existing output is replaced only with ``force``, and only when flexseg plan wrote it."""
    from flexseg.planning.fingerprint import take_fingerprint

    t0 = time.perf_counter()
    output = Path(os.path.abspath(output))
    if output.suffix.lower() not in (".yaml", ".yml"):
        raise ConfigError(f"--output {output.name}: the experiment is a YAML file; give a name ending in .yaml")
    name = name or re.sub(r"[^A-Za-z0-9_.-]+", "-", output.stem).strip("-.") or "planned"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ConfigError(f"--name {name[:60]!r}: letters, digits, '.', '_' and '-', starting with a letter or digit")
    for folder in (images, masks):
        folder = Path(os.path.abspath(folder))
        if output.parent == folder or output.parent.is_relative_to(folder):
            raise ConfigError(f"--output {output} is inside the input folder {folder}; inputs are never written to")
    stem = output.name.rsplit(".", 1)[0]
    fingerprint_file = output.with_name(f"{stem}.fingerprint.json")
    groups_file = output.with_name(f"{stem}.groups.csv")
    output.parent.mkdir(parents=True, exist_ok=True)
    with folder_lock(output.parent, output.parent / f".{stem}.plan-lock", command="plan"):
        for path in (output, fingerprint_file, groups_file):
            _check_replaceable(path, force)
        fp = take_fingerprint(Path(images), Path(masks))
        raw, why, fit = _plan(fp, name, output.parent, budget_s, measure, groups_file)
        validate_experiment(raw, output.parent, str(output))  # the plan is a valid experiment, or a bug
        commands = _commands(output, raw)
        text = commented_experiment_yaml(raw, _header(fp, fit, budget_s, commands, fingerprint_file), why)
        written_groups = None
        if fp.groups.get("rows"):
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(["file", "group"])
            writer.writerows(sorted(fp.groups["rows"].items()))
            atomic_write_text(groups_file, buffer.getvalue(), record=False)
            written_groups = groups_file
        record = {"planned_by": f"flexseg plan {__version__}", "budget_seconds": budget_s, **fp.to_json()}
        record["budget_fit"] = {k: v for k, v in vars(fit).items()}
        atomic_write_text(fingerprint_file, json.dumps(record, indent=1) + "\n", record=False)
        atomic_write_text(output, text, record=False)  # last: the experiment names the files above
    return PlanResult(
        output, fingerprint_file, fp, fit, raw, budget_s, time.perf_counter() - t0, written_groups, commands
    )


def _check_replaceable(path: Path, force: bool) -> None:
    if not path.exists() and not path.is_symlink():
        return
    if not force:
        raise RunError(f"{path} already exists; pass --force to replace it, or choose another --output")
    if path.is_symlink() or not path.is_file() or not _planned(path):
        raise RunError(f"{path} was not written by flexseg plan; it is never replaced. Choose another --output")


def _planned(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(4096).decode("utf-8", "replace")
    except OSError:
        return False
    if path.suffix == ".json":
        return '"planned_by": "flexseg plan' in head
    if path.suffix == ".csv":
        return head.startswith("file,group\n")  # only ever written beside a planned experiment
    return head.startswith(PLANNED_MARK)


def _relative(path: str, base: Path) -> str:
    try:
        return os.path.relpath(path, base)
    except ValueError:  # another drive
        return path


def _plan(
    fp: Fingerprint, name: str, home: Path, budget_s: float, measure: Callable | None, groups_file: Path
) -> tuple[dict, dict, rules.BudgetFit]:
    why: dict[str, str] = {}

    def take(key: str, choice: rules.Choice):
        why[key] = choice.why
        return choice.value

    classes = take("classes", rules.classes(fp))
    split_keys = take("split", rules.split(fp))
    folds = split_keys.get("folds")
    n_train, n_valid = rules.train_samples(fp, split_keys)
    copies = take("augment.copies", rules.copies(n_train))
    raw = {
        "name": name,
        "classes": classes,
        "image": {"width": 0, "height": 0, "channels": take("image.channels", rules.channels(fp))},
        "model": {
            "base_filters": 16,
            "max_filters": rules.MAX_FILTERS,
            "base_kernels": [3, 3],
            "num_layers": 2,
            "dropout_rate": 0.02,
            "normalization": False,
            "input_normalize": True,
        },
        "train": {
            "learning_rate": 1.0e-3,
            "loss": take("train.loss", rules.loss(fp)),
            "batch_size": 4,
            "epochs": 1,
            "patience": 10,
            "reducer_factor": 0.5,
            "reducer_patience": 4,
            "num_infer_images": 2,
            "seed": 137,
        },
    }
    measure = measure or _measured
    fit = rules.fit_budget(
        fp,
        budget_s,
        folds or 1,
        n_train,
        n_valid,
        copies,
        lambda w, h, base, batch, layers: measure(raw, w, h, base, batch, layers),
    )
    raw["image"].update(width=fit.width, height=fit.height)
    raw["model"].update(base_filters=fit.base_filters, num_layers=fit.layers)
    patience = max(10, fit.epochs // 5)
    raw["train"].update(
        batch_size=fit.batch_size,
        epochs=fit.epochs,
        patience=patience,
        reducer_patience=max(3, patience // 2 - 1),
    )
    median = fp.size["median"]
    why["image"] = (
        f"the median image is {median[0]}×{median[1]}; {fit.width}×{fit.height} is the largest size (at most "
        f"{rules.MAX_SIZE}) whose training fits the budget, a multiple of 2^(num_layers−1)"
    )
    why["model"] = (
        f"{fit.layers} levels bring the short side to {min(fit.width, fit.height) // 2 ** (fit.layers - 1)} pixels "
        f"at the bottleneck (about 4–8); base_filters {fit.base_filters} doubling per level, capped at "
        f"{rules.MAX_FILTERS}; no BatchNorm: batches of {fit.batch_size} give it lagging statistics"
    )
    why["train"] = "Adam at 1e-3, halved when validation loss stalls; early stopping keeps the best epoch"
    why["train.epochs"] = fit.why
    why["train.batch_size"] = "; ".join(fit.tried[-3:])
    why["train.patience"] = "stop after this many epochs without a lower val_loss: a fifth of the epochs, at least 10"
    root = Path("data") / name
    split = {"images": _relative(fp.images, home), "masks": _relative(fp.masks, home)}
    if fp.kind != "volumes":
        split["pairing"] = fp.pairing["rule"]
        if fp.pairing.get("image_pattern"):
            split["image_pattern"] = fp.pairing["image_pattern"]
        why["split.pairing"] = "the first rule that pairs every file: " + "; ".join(
            f"{rule} {what}" for rule, what in fp.pairing["tried"].items()
        )
    if fp.groups.get("rows"):
        split["groups_csv"] = groups_file.name
    split.update(split_keys)
    raw["data"] = {"root": root.as_posix()}
    raw["split"] = split
    volume = take("volume", rules.intensity(fp))
    if volume:
        raw["volume"] = volume
    raw["augment"] = {"copies": copies, "transforms": AUGMENT_TRANSFORMS}
    why["augment"] = (
        "offline copies with flips, small affine and elastic changes and brightness, contrast and gamma: "
        "what anatomy and scanners vary in"
    )
    test_images = root / ("fold_0/test/images" if folds else "test/images")
    raw["infer"] = {"images": test_images.as_posix()}
    why["infer"] = "the held-out test split; point it at new scans, or pass infer --images DIR"
    return raw, why, fit


def _measured(raw: dict, w: int, h: int, base: int, batch: int, layers: int) -> float:
    from flexseg.planning.measure import step_seconds

    return step_seconds(raw, w, h, base, batch, layers)


def _commands(output: Path, raw: dict) -> list[str]:
    path = _relative(str(output), Path.cwd())
    folds = " --folds" if raw["split"].get("folds") else ""
    return [
        f"flexseg split {path}",
        f"flexseg augment {path}",
        f"flexseg train {path}{folds}",
        f"flexseg evaluate {path}",
        f"flexseg infer {path}",
    ]


def _header(fp: Fingerprint, fit: rules.BudgetFit, budget_s: float, commands: list[str], fingerprint_file: Path) -> str:
    import textwrap

    lines = textwrap.wrap(
        f"{PLANNED_MARK[2:]} {__version__} on {time.strftime('%Y-%m-%d')} from a folder of {fp.pairs} "
        f"{'volume' if fp.kind == 'volumes' else 'image'} pairs ({fp.samples} samples), for a budget of "
        f"{budget_s / 60:.0f} min on a machine of {os.cpu_count()} CPUs: split, augment, train and evaluate "
        f"are expected to take about {fit.expected_seconds / 60:.0f} min.",
        96,
    )
    lines += [
        "",
        "Each choice's reason is the comment above it; the statistics behind them are in",
        f"{fingerprint_file.name}. Run it as it is:",
        *(f"  {c}" for c in commands),
    ]
    if not fit.fits:
        lines += ["", "The budget is too small for a good model at any size: see train.epochs."]
    return "\n".join(lines)
