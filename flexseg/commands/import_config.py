"""flexseg import-config: a seed ``train_eval_infer.config`` (INI with Python literals) → an experiment.

Values are parsed with ``ast.literal_eval``, never ``eval``: a value that is not a plain literal
(``__import__('os').system(...)``, ``cv2.INTER_CUBIC``) is refused where flexseg needs it and
reported where it does not. Every key is either mapped onto the schema or listed as a warning.
Relative paths, which the legacy scripts resolved from the config's own folder, are rewritten relative to
the new experiment file. The result is validated by the experiment schema before it is written.
"""

from __future__ import annotations

import ast
import configparser
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from flexseg.errors import ConfigError, excerpt

# (section, key) -> dotted flexseg key; values copied as they are
DIRECT = {
    ("model", "image_width"): "image.width",
    ("model", "image_height"): "image.height",
    ("model", "image_channels"): "image.channels",
    ("model", "base_filters"): "model.base_filters",
    ("model", "base_kernels"): "model.base_kernels",
    ("model", "num_layers"): "model.num_layers",
    ("model", "dropout_rate"): "model.dropout_rate",
    ("model", "dilation"): "model.dilation",
    ("model", "normalization"): "model.normalization",
    ("model", "input_normalize"): "model.input_normalize",
    ("model", "learning_rate"): "train.learning_rate",
    ("model", "clipvalue"): "train.clipvalue",
    ("train", "epochs"): "train.epochs",
    ("train", "batch_size"): "train.batch_size",
    ("train", "patience"): "train.patience",
    ("train", "reducer_factor"): "train.reducer_factor",
    ("train", "reducer_patience"): "train.reducer_patience",
    ("train", "num_infer_images"): "train.num_infer_images",
    ("train", "seed"): "train.seed",
}
TYPOS = {("train", "reduer_patience"): ("train", "reducer_patience")}
# keys whose seed behaviour flexseg has built in, or that no longer mean anything
BUILT_IN = {
    ("model", "model"): "flexseg always trains a FlexUNet",
    ("model", "generator"): "use augment.online for on-the-fly augmentation",
    ("model", "show_summary"): "not needed",
    ("model", "metrics"): "flexseg always reports dice_coef_multiclass, Dice, IoU, precision, recall and HD95",
    ("model", "num_classes"): "taken from [mask] rgb_map",
    ("train", "metrics"): "flexseg always records its metrics",
    ("train", "learning_rate_reducer"): "flexseg always reduces the learning rate on plateau",
    ("train", "save_weights_only"): "flexseg saves the best model as weights only",
    ("train", "create_backup"): "flexseg never deletes a run; --resume and --force say what happens to it",
    ("train", "model_dir"): "flexseg writes the model into the run folder (run_dir, default runs/<name>)",
    ("train", "eval_dir"): "flexseg writes the history into the run folder",
    ("train", "epoch_change_infer"): "always on (train.num_infer_images: 0 turns it off)",
    ("train", "epoch_change_infer_dir"): "always <run folder>/epoch_change_infer",
    ("dataset", "class_name"): "not needed",
    ("dataset", "datasetclass"): "not needed",
    ("image", "color_order"): "flexseg reads images as RGB",
    ("mask", "mask_file_format"): "masks are read by their file extension",
}
MAX_CONFIG_BYTES = 256 * 1024
MAX_VALUE_CHARS = 65536  # longer values are not parsed (a 256-class rgb_map is about 5 KB)
LOSSES = {"categorical_crossentropy": "categorical_crossentropy"}


@dataclass
class Imported:
    experiment: dict
    warnings: list[str] = field(default_factory=list)


def _literal(text: str, where: str):
    if len(text) > MAX_VALUE_CHARS:
        raise ConfigError(f"{where}: a value of {len(text):,} characters (the limit is {MAX_VALUE_CHARS:,}); not read")
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise ConfigError(
            f"{where} = {text.strip()[:80]!r} is not a plain Python literal; flexseg never "
            "evaluates code from a config. Write the value as a literal (a number, string, "
            "tuple, list or dict)"
        ) from None


def _set(tree: dict, dotted: str, value: object) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[leaf] = value


def _classes(rgb_map: object, where: str) -> list[dict]:
    if not isinstance(rgb_map, dict) or not rgb_map:
        raise ConfigError(
            f"{where}: rgb_map must be a dict of (r, g, b): class index, e.g. {{(0,0,0):0, (255,255,255):1}}"
        )
    by_index: dict[int, tuple] = {}
    for colour, index in rgb_map.items():
        if (
            not isinstance(colour, tuple)
            or len(colour) != 3
            or not all(isinstance(c, int) and 0 <= c <= 255 for c in colour)
        ):
            raise ConfigError(f"{where}: {colour!r} is not an (r, g, b) colour of three integers 0..255")
        if not isinstance(index, int) or index in by_index:
            raise ConfigError(f"{where}: class index {index!r} of {colour} is not an integer used once")
        by_index[index] = colour
    if sorted(by_index) != list(range(len(by_index))):
        raise ConfigError(f"{where}: class indices {sorted(by_index)} must be 0, 1, 2, ... without gaps")
    return [{"name": "background" if i == 0 else f"class{i}", "color": list(by_index[i])} for i in sorted(by_index)]


def _path(value: object, where: str, config_dir: Path, output_dir: Path) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be a path string, got {value!r}")
    p = Path(value).expanduser()
    if p.is_absolute():
        return str(p)
    return Path(os.path.relpath((config_dir / p).resolve(), output_dir.resolve())).as_posix()


def _split_folder(section: str, keys: dict, config_dir: Path, output_dir: Path, warnings: list[str]) -> str | None:
    """A seed split gives images_dir and masks_dir; flexseg wants the folder that holds images/ and masks/."""
    images, masks = keys.get("images_dir"), keys.get("masks_dir")
    if images is None:
        return None
    images_path = Path(str(images).rstrip("/"))
    masks_path = Path(str(masks).rstrip("/")) if masks is not None else None
    if images_path.name == "images" and masks_path is not None and masks_path == images_path.parent / "masks":
        return _path(str(images_path.parent), f"[{section}] images_dir", config_dir, output_dir)
    warnings.append(
        f"[{section}] images_dir={images!r}, masks_dir={masks!r}: flexseg reads a split from one folder "
        f"holding images/ and masks/; set data.{section} by hand "
        "(or run flexseg split on your master folder)"
    )
    return None


def convert_legacy_config(path: Path, output: Path) -> Imported:
    """Convert the legacy config at ``path`` into an experiment dict for the file ``output``."""
    from flexseg.config import validate_experiment

    raw = _read_ini(path)
    config_dir, output_dir = path.resolve().parent, output.resolve().parent
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", config_dir.name).strip("-.") or "imported"
    tree: dict = {"name": name if name[0].isalnum() else f"x{name}"}
    warnings: list[str] = []
    values = _literals(raw, path, warnings)
    for section, keys in values.items():
        for key, value in keys.items():
            _map_value(tree, section, key, value, path, config_dir, output_dir, warnings)
    for section in ("train", "valid", "test"):
        folder = _split_folder(section, values.get(section, {}), config_dir, output_dir, warnings)
        if folder is not None:
            _set(tree, f"data.{section}", folder)

    num_classes = values.get("model", {}).get("num_classes")
    if "classes" not in tree:
        raise ConfigError(
            f"{path}: no [mask] rgb_map; flexseg needs the class colours, e.g. rgb_map = {{(0,0,0):0, (255,255,255):1}}"
        )
    if num_classes is not None and num_classes != len(tree["classes"]):
        raise ConfigError(
            f"{path}: [model] num_classes = {num_classes} but [mask] rgb_map has "
            f"{len(tree['classes'])} colours; make them agree"
        )
    validate_experiment(tree, base_dir=output_dir, source=f"{path} (imported)")
    return Imported(tree, warnings)


def _read_ini(path: Path) -> dict[str, dict[str, str]]:
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file; pass the legacy scripts' train_eval_infer.config")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{path}: {path.stat().st_size:,} bytes; a legacy config is a few KB (the limit is "
            f"{MAX_CONFIG_BYTES:,}): is this the right file?"
        )
    # strict: a key or section given twice is refused (the legacy scripts' configparser let the last one win)
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";", "#"), strict=True)
    try:
        parser.read_string(path.read_text(encoding="utf-8"), source=str(path))
    except (configparser.DuplicateOptionError, configparser.DuplicateSectionError) as e:
        raise ConfigError(
            f"{path}: {e.message if hasattr(e, 'message') else str(e).splitlines()[0]}; keep one and delete the other"
        ) from None
    except (configparser.Error, UnicodeDecodeError) as e:
        raise ConfigError(
            f"{path}: not an INI config the legacy scripts could read ({str(e).splitlines()[0][:200]})"
        ) from None
    return {s: dict(parser.items(s)) for s in parser.sections()}


def _literals(raw: dict[str, dict[str, str]], path: Path, warnings: list[str]) -> dict[str, dict]:
    """Every value as a Python literal; one that is not is refused where flexseg needs the key,
    reported and left out elsewhere."""
    values: dict[str, dict] = {}
    for section, keys in raw.items():
        values[section] = {}
        for key, text in keys.items():
            used_by_flexseg = (
                (section, key) in DIRECT
                or (section, key) in TYPOS
                or key == "rgb_map"
                or key in ("images_dir", "masks_dir", "loss", "optimizer")
            )
            try:
                values[section][key] = _literal(text, f"{path.name} [{section}] {key}")
            except ConfigError:
                if used_by_flexseg:  # flexseg needs it: refuse
                    raise
                warnings.append(
                    f"[{section}] {key} = {excerpt(text.strip())}: not a plain literal (or too long); not imported"
                )
    return values


def _map_value(
    tree: dict,
    section: str,
    key: str,
    value: object,
    path: Path,
    config_dir: Path,
    output_dir: Path,
    warnings: list[str],
) -> None:
    """One legacy key onto the experiment, or a warning saying why not."""
    section_key = (section, key)
    if section_key in TYPOS:
        fixed = TYPOS[section_key]
        warnings.append(
            f"[{section}] {key} is the legacy scripts' typo for {fixed[1]}; imported as "
            f"{DIRECT[fixed]} = {value!r} (the legacy scripts never applied it)"
        )
        _set(tree, DIRECT[fixed], value)
    elif section_key in DIRECT:
        _set(tree, DIRECT[section_key], list(value) if isinstance(value, tuple) else value)
    elif key == "rgb_map":
        tree["classes"] = _classes(value, f"{path.name} [{section}] rgb_map")
    elif section_key == ("model", "loss"):
        if value in LOSSES:
            _set(tree, "train.loss", LOSSES[value])
        else:
            warnings.append(
                f"[model] loss = {value!r} is not in flexseg; using categorical_crossentropy (others: dice, ce+dice)"
            )
    elif section_key == ("model", "optimizer"):
        if str(value).lower() != "adam":
            warnings.append(f"[model] optimizer = {value!r}: flexseg trains with Adam")
    elif key in ("images_dir", "masks_dir") and section in ("train", "valid", "test"):
        return  # paired by _split_folder
    elif section_key in (("infer", "images_dir"), ("infer", "output_dir")):
        target = "infer.images" if key == "images_dir" else "infer.output"
        _set(tree, target, _path(value, f"[infer] {key}", config_dir, output_dir))
    elif section_key in BUILT_IN:
        warnings.append(f"[{section}] {key} = {excerpt(value)}: not imported; {BUILT_IN[section_key]}")
    else:
        warnings.append(f"[{section}] {key} = {excerpt(value)}: flexseg has no such setting; not imported")


@dataclass
class ImportResult:
    target: Path
    classes: int
    warnings: list[str]


def import_config(config: Path, output: Path | None = None, force: bool = False) -> ImportResult:
    """``flexseg import-config``: convert ``config`` and write the experiment (default
    ``experiment.yaml`` beside it); an existing file is replaced only with ``force``."""
    from flexseg.config import experiment_yaml
    from flexseg.errors import RunError
    from flexseg.fsutil import atomic_write_text

    target = output or config.parent / "experiment.yaml"
    if target.exists() and not force:
        raise RunError(f"{target} already exists; pass --force to replace it, or choose -o FILE")
    imported = convert_legacy_config(config, target)
    header = (
        f"Imported by `flexseg import-config` from {config.name}.\nClass names are placeholders "
        "(background, class1, ...): rename them."
    )
    atomic_write_text(target, experiment_yaml(imported.experiment, header))
    return ImportResult(target, len(imported.experiment["classes"]), imported.warnings)
