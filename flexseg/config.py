"""The experiment schema: the single source of truth for what an experiment may say.

This is the only module that parses YAML. An experiment is validated on load: unknown keys
are rejected with the closest valid key, values are type- and range-checked, and relative
paths are resolved against the folder of the YAML file (not the working directory).
"""

from __future__ import annotations

import difflib
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from flexseg.errors import ConfigError, excerpt

SPLITS = ("train", "valid", "test")
MAX_CLASSES = 256  # masks are palette PNGs of 8-bit class indices
# shared defaults: every module that needs one of these takes it from here
MASK_TOLERANCE = 60.0  # per-channel distance of a mask pixel to the nearest class colour
PERCENTILES = (0.5, 99.5)  # the 8-bit range of an image without a window (MR volumes, DICOM without one)
NSD_TOLERANCE_MM = 2.0  # normalised surface Dice: about two voxels of a CT/MR scan
PREDICT_BATCH = 4  # images a prediction batch holds unless told otherwise
SEED_RANGE = dict(ge=0, le=2**32 - 1)  # what NumPy, TensorFlow and albumentations all accept
MAX_YAML_BYTES = 1024 * 1024
MAX_YAML_DEPTH = 32
MAX_YAML_NODES = 100_000  # counted with aliases expanded: a few hundred bytes of aliases can mean billions


class _ExperimentLoader(yaml.SafeLoader):
    """yaml.safe_load, plus: a key given twice in a mapping is an error (not "the last wins"),
    and nesting depth and the size of the document with its aliases expanded are bounded."""

    def compose_node(self, parent: yaml.Node | None, index: object):
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark
                raise ConfigError(
                    f"nested more than {MAX_YAML_DEPTH} levels deep at line {mark.line + 1}; "
                    "an experiment is a few levels of sections"
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.Node, deep: bool = False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                continue  # the base class reports unhashable keys
            if key in seen:
                raise ConfigError(
                    f"line {key_node.start_mark.line + 1}: the key {str(key)[:60]!r} is given twice "
                    f"in one section (first at line {seen[key]}); keep one"
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _expanded_size(node: yaml.Node, memo: dict) -> int:
    """Nodes in the document with every alias expanded, counted without expanding (memoised)."""
    key = id(node)
    if key not in memo:
        memo[key] = 0  # a recursive alias counts once
        children = node.value if isinstance(node.value, list) else []
        total = 1
        for child in children:
            for part in child if isinstance(child, tuple) else (child,):
                total += _expanded_size(part, memo)
                if total > MAX_YAML_NODES:
                    break
        memo[key] = total
    return memo[key]


def parse_yaml(text: str, source: str) -> object:
    """The one YAML reader of flexseg: safe (no Python tags), no duplicate keys, bounded."""
    if len(text) > MAX_YAML_BYTES:
        raise ConfigError(f"{source}: {len(text):,} characters; an experiment is a few KB (limit {MAX_YAML_BYTES:,})")
    loader = _ExperimentLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > MAX_YAML_NODES:
            raise ConfigError(
                f"its aliases expand to more than {MAX_YAML_NODES:,} values; "
                "write the values out instead of nesting aliases"
            )
        return loader.construct_document(node)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to read") from None
    finally:
        loader.dispose()


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    value = value.expanduser()
    if base is not None and not value.is_absolute():
        value = Path(base) / value
    return Path(value).resolve() if value.is_absolute() else value


ResolvedPath = Annotated[Path, AfterValidator(_resolve_path)]
ColorValue = Annotated[int, Field(ge=0, le=255)]
# field types the experiment shares with the files that record it (model.json: model.store.ModelCard)
PixelSize = Annotated[int, Field(ge=1, le=16384)]
Channels = Literal[1, 3]
SliceContext = Literal[0, 1]
Plane = Literal["axial", "coronal", "sagittal"]
MaskTolerance = Annotated[float, Field(ge=0.0, le=255.0)]  # per-channel distance to the nearest class colour


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClassSpec(_Section):
    """One segmentation class and the RGB colour that marks it in mask files."""

    name: str = Field(min_length=1)  # the first class is the background
    color: tuple[ColorValue, ColorValue, ColorValue]  # RGB in the mask files


class ImageSpec(_Section):
    """The size every image is resized to before it enters the model."""

    width: PixelSize  # images are resized to this; must divide by 2^(num_layers-1)
    height: PixelSize  # as width
    channels: Channels = 3  # greyscale files are expanded to 3 channels, colour ones made grey for 1
    # 2.5D: with 1, a slice of a volume enters the model with its neighbours, the three channels
    # being the previous, the current and the next slice (an image file holds at most 3 channels,
    # so more context than 1 slice a side is not offered)
    context: SliceContext = 0

    @model_validator(mode="after")
    def _context_in_three_channels(self) -> "ImageSpec":
        if self.context and self.channels != 3:
            raise ValueError("context: 1 puts the previous, current and next slice in 3 channels; set channels: 3")
        return self


class ModelSpec(_Section):
    """FlexUNet knobs, named as in the legacy scripts' train_eval_infer.config."""

    base_filters: int = Field(16, ge=1, le=1024)  # filters at level i: base_filters · 2^i
    max_filters: int | None = Field(None, ge=1, le=4096)  # filters at a level never exceed this (None: no cap)
    base_kernels: tuple[int, int] = (3, 3)  # square and odd; shrinks by 2 per level down to 3
    num_layers: int = Field(6, ge=1, le=12)  # encoder levels
    dropout_rate: float = Field(0.0, ge=0.0, lt=1.0)  # dropout at level i: dropout_rate · i
    dilation: tuple[int, int] = (1, 1)  # shrinks by 1 per level down to 1
    normalization: bool = False  # BatchNormalization after each convolution
    input_normalize: bool = True  # divide pixel values by 255 inside the model

    @field_validator("base_kernels")
    @classmethod
    def _odd_square_kernels(cls, v: tuple[int, int]) -> tuple[int, int]:
        if v[0] != v[1] or v[0] < 1 or v[0] % 2 == 0:
            raise ValueError(f"must be a square odd kernel such as [3, 3] or [9, 9] (got {list(v)})")
        return v

    @field_validator("dilation")
    @classmethod
    def _square_dilation(cls, v: tuple[int, int]) -> tuple[int, int]:
        if v[0] != v[1] or v[0] < 1:
            raise ValueError(f"must be two equal positive integers such as [1, 1] (got {list(v)})")
        return v

    @model_validator(mode="after")
    def _dropout_below_one_at_every_level(self) -> "ModelSpec":
        deepest = self.dropout_rate * (self.num_layers - 1)
        if deepest >= 1.0:
            raise ValueError(
                f"dropout_rate × (num_layers − 1) = {deepest:.2f} must stay below 1 "
                "(dropout grows by level); lower model.dropout_rate"
            )
        return self


class TrainSpec(_Section):
    """How ``flexseg train`` fits the model: Adam, the loss, early stopping, the learning-rate
    reducer, the seed, precision and tf.distribute."""

    learning_rate: float = Field(1e-4, gt=0.0, le=1.0)  # Adam's
    clipvalue: float | None = Field(None, gt=0.0)  # gradient clipping by value; null: none
    # ce+dice: cross-entropy plus soft Dice, for small foreground classes
    loss: Literal["categorical_crossentropy", "dice", "ce+dice"] = "categorical_crossentropy"
    batch_size: int = Field(2, ge=1, le=4096)  # per replica (tf.distribute)
    epochs: int = Field(100, ge=1)  # at most; early stopping may end a run sooner
    patience: int = Field(10, ge=1)  # EarlyStopping on val_loss
    reducer_factor: float = Field(0.5, gt=0.0, lt=1.0)  # the learning rate is multiplied by this on a plateau
    reducer_patience: int = Field(4, ge=1)  # epochs without a better val_loss before it is
    num_infer_images: int = Field(6, ge=0)  # epoch-change inference images per epoch
    seed: int = Field(
        137, **SEED_RANGE
    )  # the experiment's seed: Python, NumPy, TensorFlow, albumentations; split/augment default to it
    distribute: Literal["auto", "none", "mirrored", "multi_worker"] = "auto"  # tf.distribute strategy
    # auto: bfloat16 where the CPU (AVX512-BF16/AMX) or GPU computes it natively, float16 on older
    # GPUs with tensor cores, else none (float32); see flexseg.precision. The softmax head stays float32
    mixed_precision: Literal["auto", "none", "bfloat16", "float16"] = "auto"
    jit_compile: bool = False  # XLA-compile the training step: for GPUs (on a CPU 2-3x slower, measured)
    tensorboard: bool = False  # logs in <run_dir>/tensorboard
    # mlflow (pip install 'flexseg[track]'): parameters, each epoch's metrics, the test scores and the
    # report logged to MLflow; a fold of a cross-validation is a child run. Never fails a training
    track: Literal["none", "mlflow"] = "none"
    # MLflow tracking URI (a team server: http://host:5000); null: $MLFLOW_TRACKING_URI, else
    # sqlite:///<the folder holding the run folder>/mlflow.db
    track_uri: str | None = Field(None, min_length=1)


class DataSpec(_Section):
    """Where the split dataset lives: ``root/{train,valid,test}/{images,masks}``.

    ``train``, ``valid`` and ``test`` override one split's folder (which holds
    ``images/`` and ``masks/``), e.g. to point all three at one small folder.
    """

    root: ResolvedPath | None = None  # holds train/ valid/ test/ (or fold_k/ and test/), each with images/ masks/
    train: ResolvedPath | None = None  # one split's own folder (with images/ and masks/), instead of root's
    valid: ResolvedPath | None = None  # as train
    test: ResolvedPath | None = None  # as train
    # mask pixels further than this (in any channel) from every class colour are reported; all map
    # to the nearest colour
    mask_tolerance: MaskTolerance = MASK_TOLERANCE

    def split_dir(self, split: str) -> Path:
        explicit = getattr(self, split)
        if explicit is not None:
            return explicit
        if self.root is None:
            raise ConfigError(f"data.{split}: no folder for the {split} split; set data.root or data.{split}")
        return self.root / split


def _compiled(pattern: str | None, needs_group: str) -> str | None:
    if pattern is None:
        return None
    try:
        rx = re.compile(pattern)
    except re.error as e:
        raise ValueError(f"not a valid regular expression ({e})") from None
    if not rx.groups:
        raise ValueError(f"needs a (group) that captures the {needs_group}, e.g. '^(p\\d+)_'")
    return pattern


def parse_mask_value(key: int | str) -> tuple[int, int, int]:
    """A raw mask value as RGB: a grey level (``255``) or a colour (``"255,0,0"``)."""
    parts = [key] if isinstance(key, int) else str(key).replace(" ", "").split(",")
    try:
        values = [int(v) for v in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 3) or not all(0 <= v <= 255 for v in values):
        raise ValueError(f"mask value {key!r} must be a grey level 0..255 or 'R,G,B'")
    return (values[0],) * 3 if len(values) == 1 else tuple(values)


class SplitSpec(_Section):
    """How ``flexseg split`` turns a master folder of raw images and masks into data.root."""

    images: ResolvedPath | None = None  # the raw images: png, jpg, tif, bmp or DICOM (.dcm)
    masks: ResolvedPath | None = None  # the raw masks
    # how images find their masks: by file stem, by sorted position, by DICOM InstanceNumber, by regex
    pairing: Literal["stem", "natural", "instance_number", "regex"] = "stem"
    image_pattern: str | None = None  # pairing: regex; its first group is the pairing key
    mask_pattern: str | None = None  # pairing: regex; default image_pattern
    mask_values: dict[int | str, str] | None = None  # raw mask value -> class name
    ratios: dict[Literal["train", "valid", "test"], float] = {"train": 0.8, "valid": 0.15, "test": 0.05}  # of groups
    seed: int | None = Field(None, **SEED_RANGE)  # default: train.seed
    group_pattern: str | None = None  # regex on the image file name; its first group is the patient
    groups_csv: ResolvedPath | None = None  # CSV with columns file,group
    folds: int | None = Field(None, ge=2, le=100)  # k-fold: valid = one fold, train = the others
    # volumes: the share of slices without foreground that is kept (all slices with foreground are)
    empty_slices: float = Field(1.0, ge=0.0, le=1.0)

    @field_validator("image_pattern", "mask_pattern")
    @classmethod
    def _key_pattern(cls, v: str | None) -> str | None:
        return _compiled(v, "pairing key")

    @field_validator("group_pattern")
    @classmethod
    def _group_pattern(cls, v: str | None) -> str | None:
        return _compiled(v, "group (patient)")

    @field_validator("mask_values")
    @classmethod
    def _mask_values(cls, v: dict | None) -> dict | None:
        if v is not None:
            colors = [parse_mask_value(k) for k in v]
            if len(set(colors)) != len(colors):
                raise ValueError("two raw values name the same colour")
        return v

    @field_validator("ratios")
    @classmethod
    def _ratios(cls, v: dict[str, float]) -> dict[str, float]:
        v = {split: float(v.get(split, 0.0)) for split in SPLITS}
        if any(r < 0 for r in v.values()) or abs(sum(v.values()) - 1.0) > 1e-6 or v["train"] <= 0:
            raise ValueError(
                "must be fractions of train, valid, test that sum to 1 with "
                f"train > 0, e.g. {{train: 0.7, valid: 0.2, test: 0.1}} (got {v})"
            )
        return v

    @model_validator(mode="after")
    def _regex_pairing_needs_pattern(self) -> "SplitSpec":
        if self.pairing == "regex" and not self.image_pattern:
            raise ValueError(
                "split.pairing: regex needs split.image_pattern (and split.mask_pattern if mask names differ)"
            )
        if self.group_pattern and self.groups_csv:
            raise ValueError("split: give group_pattern or groups_csv, not both")
        return self


class AugmentSpec(_Section):
    """Augmentation with albumentations: offline copies written by ``flexseg augment``, or,
    with ``online: true``, a fresh random transform of every training pair in every epoch."""

    online: bool = False  # true: flexseg train applies the transforms on the fly
    copies: int = Field(1, ge=1, le=1000)  # augmented copies written per training pair (offline)
    seed: int | None = Field(None, **SEED_RANGE)  # offline copies; default: train.seed (online always uses train.seed)
    # albumentations transforms in order: a name, or {Name: {argument: value}};
    # OneOf / SomeOf take {transforms: [...]}
    transforms: list[str | dict[str, Any]] = []

    @field_validator("transforms")
    @classmethod
    def _known_transforms(cls, v: list) -> list:
        if v:
            from flexseg.transforms import (
                build_pipeline,  # imports albumentations: only when used
            )

            build_pipeline(v)
        return v


class EvaluateSpec(_Section):
    """How ``flexseg evaluate`` scores: the empty-class rule and the surface-Dice tolerance."""

    # a class in neither the truth nor the prediction of an image: "nan" leaves that image out
    # of the class's mean (and counts it); "one" scores it 1.0 (HD95 0)
    both_empty: Literal["nan", "one"] = "nan"
    # normalised surface Dice of label volumes: how far (mm) a boundary may lie from the true one
    # and still count; one value for every class or {class: mm}. 2 mm: about two voxels of a
    # typical CT/MR scan, the order of boundary disagreement between human raters
    nsd_tolerance_mm: float | dict[str, float] = NSD_TOLERANCE_MM

    @field_validator("nsd_tolerance_mm")
    @classmethod
    def _positive_tolerances(cls, v: float | dict[str, float]) -> float | dict[str, float]:
        values = v.values() if isinstance(v, dict) else [v]
        if not all(math.isfinite(x) and x >= 0 for x in values):
            raise ValueError("tolerances are distances in mm: finite and not negative")
        return v

    def tolerances_mm(self, classes: list[str]) -> dict[str, float]:
        """The NSD tolerance of each foreground class."""
        v = self.nsd_tolerance_mm
        if not isinstance(v, dict):
            return dict.fromkeys(classes, float(v))
        unknown = sorted(set(v) - set(classes))
        if unknown:
            raise ConfigError(
                f"evaluate.nsd_tolerance_mm: {unknown[0]!r} is not a foreground class ({', '.join(classes)})"
            )
        return {c: float(v.get(c, NSD_TOLERANCE_MM)) for c in classes}


class InferSpec(_Section):
    """What ``flexseg infer EXPERIMENT`` predicts by default, where, and in which precision."""

    images: ResolvedPath | None = None  # a folder (or file) of images or volumes; the legacy mini_test
    output: ResolvedPath | None = None  # default: <run_dir>/mini_test_output
    # the type the model computes in for infer and evaluate (its weights cast at load); auto as
    # train.mixed_precision
    precision: Literal["auto", "float32", "bfloat16", "float16"] = "auto"


# CT windows (centre, width) in Hounsfield units, as radiology viewers name them
WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "bone": (400.0, 1800.0),
    "soft_tissue": (40.0, 400.0),
    "lung": (-600.0, 1500.0),
    "brain": (40.0, 80.0),
}


class VolumeSpec(_Section):
    """How slices are taken from 3D volumes (NIfTI) and mapped to 8-bit pixels. Recorded with a
    trained model, so ``infer`` maps a volume exactly as the training slices were mapped."""

    plane: Plane = "axial"  # in patient space, not by array axis
    # CT: a preset name or [centre, width] in HU; "header": each DICOM file's own display window,
    # as `split` reads single DICOM files; None: per-volume percentiles (MR)
    window: str | tuple[float, float] | None = None
    percentiles: tuple[float, float] = PERCENTILES  # per volume, mapped to 0..255 when window is null (MR)

    @field_validator("window")
    @classmethod
    def _known_window(cls, v: str | tuple[float, float] | None) -> str | tuple[float, float] | None:
        if isinstance(v, str) and v not in WINDOW_PRESETS and v != "header":
            close = difflib.get_close_matches(v, list(WINDOW_PRESETS), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(
                f"{v!r} is not a window preset; {hint}presets: {', '.join(WINDOW_PRESETS)}, header, or [centre, width]"
            )
        if isinstance(v, tuple) and not (math.isfinite(v[0]) and math.isfinite(v[1]) and v[1] > 0):
            raise ValueError(f"[centre, width] = {list(v)}: both finite and the width above 0")
        return v

    @field_validator("percentiles")
    @classmethod
    def _ordered_percentiles(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0.0 <= v[0] < v[1] <= 100.0:
            raise ValueError(f"{list(v)}: need 0 <= low < high <= 100")
        return v

    def mapping(self) -> dict:
        """What a model card records: the plane and the window as numbers, or the percentiles."""
        if self.window == "header":
            return {"plane": self.plane, "window": "header", "percentiles": None}
        window = WINDOW_PRESETS[self.window] if isinstance(self.window, str) else self.window
        return {
            "plane": self.plane,
            "window": None if window is None else [float(window[0]), float(window[1])],
            "percentiles": None if window is not None else [float(p) for p in self.percentiles],
        }


class Experiment(_Section):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # names the run folder (runs/<name>)
    run_dir: ResolvedPath | None = None  # default: ./runs/<name>
    classes: list[ClassSpec] = Field(min_length=2, max_length=MAX_CLASSES)
    image: ImageSpec
    model: ModelSpec = ModelSpec()
    train: TrainSpec = TrainSpec()
    data: DataSpec = DataSpec()
    split: SplitSpec = SplitSpec()
    augment: AugmentSpec = AugmentSpec()
    evaluate: EvaluateSpec = EvaluateSpec()
    infer: InferSpec = InferSpec()
    volume: VolumeSpec = VolumeSpec()

    def volume_mapping(self) -> dict:
        """How a volume's slices become the model's pixels: plane, intensity mapping and context.
        Recorded in split.json and with the model; infer applies exactly this to a volume."""
        return {**self.volume.mapping(), "context": self.image.context}

    @field_validator("classes")
    @classmethod
    def _distinct_classes(cls, v: list[ClassSpec]) -> list[ClassSpec]:
        for attr in ("name", "color"):
            seen: dict[Any, int] = {}
            for i, c in enumerate(v):
                key = getattr(c, attr)
                if key in seen:
                    raise ValueError(
                        f"classes[{seen[key]}] and classes[{i}] share the {attr} "
                        f"{list(key) if attr == 'color' else key!r}; each class needs its own"
                    )
                seen[key] = i
        return v

    @model_validator(mode="after")
    def _one_seed(self) -> "Experiment":
        """train.seed is the experiment's seed; split and augment take it unless given their own."""
        for section in (self.split, self.augment):
            if section.seed is None:
                section.seed = self.train.seed
        if self.augment.online and not self.augment.transforms:
            raise ValueError("augment.online: true needs augment.transforms (a list of albumentations transforms)")
        return self

    @model_validator(mode="after")
    def _mask_values_name_classes(self) -> "Experiment":
        names = [c.name for c in self.classes]
        for raw, name in (self.split.mask_values or {}).items():
            if name not in names:
                close = difflib.get_close_matches(name, names, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise ValueError(
                    f"split.mask_values: {raw!r} maps to {name!r}, which "
                    f"is not a class; {hint}classes: {', '.join(names)}"
                )
        return self

    @model_validator(mode="after")
    def _size_fits_the_network(self) -> "Experiment":
        factor = 2 ** (self.model.num_layers - 1)
        for axis in ("width", "height"):
            size = getattr(self.image, axis)
            if size % factor:
                below, above = size // factor * factor, (size // factor + 1) * factor
                choices = f"{below} or {above}" if below else str(above)
                raise ValueError(
                    f"image.{axis}={size} is not divisible by 2^(num_layers-1)={factor} "
                    f"(model.num_layers={self.model.num_layers}); use a multiple of {factor} such as {choices}, "
                    "or fewer layers"
                )
        return self

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def resolved_run_dir(self) -> Path:
        return self.run_dir if self.run_dir is not None else Path.cwd().resolve() / "runs" / self.name


# ---------------------------------------------------------------- loading


def load_experiment(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Experiment:
    """Read, override (``dotted.key=value``) and validate an experiment YAML file; its relative
    paths are taken from its folder."""
    path = Path(path)
    if not path.is_file():
        hint = " (it is a folder)" if path.is_dir() else ""
        raise ConfigError(
            f"{path}: experiment file not found{hint}; pass the path of a YAML experiment such as experiments/nbm.yaml"
        )
    if path.stat().st_size > MAX_YAML_BYTES:
        raise ConfigError(
            f"{path}: {path.stat().st_size:,} bytes; an experiment is a few KB (limit {MAX_YAML_BYTES:,})"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not a readable YAML file: {e}") from None
    return parse_experiment(text, str(path), path.resolve().parent, overrides)


def parse_experiment(text: str, source: str, base_dir: Path, overrides: list[str] | tuple[str, ...] = ()) -> Experiment:
    """An experiment from YAML text (``source`` names it in errors), overridden and validated,
    its relative paths taken from ``base_dir``."""
    try:
        raw = parse_yaml(text, source)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise ConfigError(f"{source}: YAML syntax error at {where}: {e.problem}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: not a readable YAML file: {e}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: an experiment must be a mapping of keys, got {type(raw).__name__}")
    raw = apply_overrides(raw, overrides)
    return validate_experiment(raw, base_dir=base_dir, source=source)


def experiment_of(experiment: Experiment | str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Experiment:
    """An experiment given as its YAML file or as an Experiment, with ``dotted.key=value``
    overrides applied (an Experiment overridden is validated again)."""
    if not isinstance(experiment, Experiment):
        return load_experiment(Path(experiment), overrides)
    if not overrides:
        return experiment
    raw = experiment_dict(experiment)
    return validate_experiment(apply_overrides(raw, overrides), base_dir=Path.cwd(), source=experiment.name)


def validate_experiment(raw: dict, base_dir: Path, source: str = "experiment") -> Experiment:
    try:
        return Experiment.model_validate(raw, context={"base_dir": base_dir})
    except ValidationError as e:
        raise ConfigError(f"{source}: " + "; ".join(_describe(err) for err in e.errors())) from None


def apply_overrides(raw: dict, overrides: list[str] | tuple[str, ...]) -> dict:
    """Apply ``--set dotted.key=value`` overrides; values are parsed as YAML scalars/lists."""
    import copy

    raw = copy.deepcopy(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected dotted.key=value, e.g. --set train.epochs=1")
        try:
            value = parse_yaml(text, f"--set {key}") if text.strip() else None
        except yaml.YAMLError:
            value = text
        node: Any = raw
        parts = key.split(".")
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(
                        f"--set {key}: {'.'.join(parts[:depth])} has {len(node)} items; {part!r} is not an index of it"
                    )
                part = int(part)
            elif not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {'.'.join(parts[:depth])} is a value, not a section")
            if last:
                node[part] = value
            else:
                if isinstance(node, dict) and not isinstance(node.get(part), (dict, list)):
                    node[part] = {}
                node = node[part]
    return raw


def experiment_yaml(raw: dict, header: str = "") -> str:
    """An experiment mapping as YAML text, in the schema's section order, after a comment header."""
    order = list(Experiment.model_fields)
    ordered = {k: raw[k] for k in order if k in raw}
    comment = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    return comment + yaml.safe_dump(ordered, sort_keys=False, default_flow_style=None, allow_unicode=True)


def commented_experiment_yaml(raw: dict, header: str, why: dict[str, str], width: int = 100) -> str:
    """``experiment_yaml`` with a reason above keys: ``why`` maps a section (``train``) or a key in
    it (``train.epochs``) to the comment written above it. The text parses back to ``raw``."""
    import textwrap

    def comment(text: str, indent: str) -> list[str]:
        return [indent + "# " + line for line in textwrap.wrap(text, width - len(indent) - 2)]

    def item(key: str, value: object) -> list[str]:  # `key: value`, a leaf collection in flow style
        flow = None if isinstance(value, (dict, list)) else False
        return yaml.safe_dump(
            {key: value}, sort_keys=False, default_flow_style=flow, allow_unicode=True, width=width
        ).splitlines()

    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    for key in [k for k in Experiment.model_fields if k in raw]:
        lines += comment(why[key], "") if key in why else []
        if not isinstance(raw[key], dict):
            lines += item(key, raw[key])
            continue
        lines.append(f"{key}:")
        for sub, value in raw[key].items():
            lines += comment(why[f"{key}.{sub}"], "  ") if f"{key}.{sub}" in why else []
            lines += ["  " + line for line in item(sub, value)]
    text = "\n".join(lines) + "\n"
    if parse_yaml(text, "the planned experiment") != {k: v for k, v in raw.items()}:
        raise ValueError("the commented YAML does not read back as the experiment")  # a bug, not bad input
    return text


def dump_experiment(exp: Experiment) -> str:
    """The resolved experiment as YAML (absolute paths), as written into the run folder."""
    return yaml.safe_dump(experiment_dict(exp), sort_keys=False, default_flow_style=None)


def experiment_dict(exp: Experiment) -> dict:
    """The experiment as plain data with every path absolute, the run folder included."""
    data = exp.model_dump(mode="json")
    data["run_dir"] = str(exp.resolved_run_dir)
    return data


# ---------------------------------------------------------------- error messages


def _loc_text(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The schema class that owns the keys at ``loc`` (None when it is not a section)."""
    model: Any = Experiment
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return None
        model = _unwrap(model.model_fields[part].annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    origin = get_origin(annotation)
    if origin in (list, tuple) or origin is not None and str(origin).endswith("Union"):
        for arg in get_args(annotation):
            inner = _unwrap(arg)
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                return inner
    return annotation


def _describe(err: dict) -> str:
    loc = tuple(err["loc"])
    where = _loc_text(loc) or "experiment"
    if err["type"] == "extra_forbidden":
        parent = _model_at(loc[:-1])
        valid = sorted(parent.model_fields) if parent else []
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.6)
        prefix = _loc_text(loc[:-1])
        if close:
            return f"{where}: unknown key; did you mean {prefix + '.' if prefix else ''}{close[0]}?"
        return f"{where}: unknown key; valid keys here: {', '.join(valid)}"
    if err["type"] == "missing":
        return f"{where}: required key is missing"
    if err["type"] == "too_long" and loc == ("classes",):
        return (
            f"classes: {len(err['input'])} classes; masks hold 8-bit class indices (palette PNG), "
            f"so at most {MAX_CLASSES}"
        )
    msg = err["msg"].removeprefix("Value error, ")
    if len(msg) > 600:
        msg = msg[:600] + "…"
    if err["type"] in ("value_error", "assertion_error") and (not loc or msg.startswith(where)):
        return msg
    got = err.get("input")
    shown = "" if isinstance(got, (dict, list)) or got is None else f" (got {excerpt(got)})"
    return f"{where}: {msg}{shown}"
