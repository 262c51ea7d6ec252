"""A trained model in its run folder: the weights-only .keras file and the JSON that describes it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, field_validator, model_validator

from flexseg import __version__, settings
from flexseg.config import (
    MASK_TOLERANCE,
    MAX_CLASSES,
    Channels,
    ColorValue,
    MaskTolerance,
    PixelSize,
    Plane,
    SliceContext,
)
from flexseg.data.classes import ClassMap
from flexseg.errors import RunError
from flexseg.fsutil import atomic_path, atomic_write_text
from flexseg.schema import Pair, Record, read_json, to_json

if TYPE_CHECKING:
    import keras

    from flexseg.config import Experiment

MODEL_FILE = "model.keras"
CARD_FILE = "model.json"
FOLDS_FILE = "folds.json"  # a cross-validation's run folder: its folds, each a run in fold_k/


class VolumeMapping(Record):
    """How slices of a 3D volume became the model's pixels (``Experiment.volume_mapping``, plus the
    DICOM windows the training slices used when ``window`` is ``header``)."""

    plane: Plane
    window: Literal["header"] | Pair | None = None
    percentiles: Pair | None = None
    context: SliceContext = 0
    header_window: Pair | None = None  # the one window every training slice had
    header_inverted: bool | None = None
    header_windows: int | None = Field(None, ge=0)  # how many windows, when they were not one


ClassColor = Annotated[list[ColorValue], Field(min_length=3, max_length=3)]


class ModelCard(Record):
    """``model.json``: what inference needs to know about a model, so a run folder is
    self-describing. Its limits are the experiment's own field types (``flexseg.config``)."""

    experiment: str
    class_names: list[Annotated[str, Field(min_length=1)]] = Field(min_length=2, max_length=MAX_CLASSES)
    class_colors: list[ClassColor]
    width: PixelSize
    height: PixelSize
    channels: Channels
    input_normalize: bool
    mask_tolerance: MaskTolerance = MASK_TOLERANCE
    flexseg_version: str = __version__
    training: dict[str, float | int | str | None] = {}  # epochs run, best epoch, best val_loss
    # how slices of a 3D volume become pixels; None: a model from before volumes, which infer on
    # volumes refuses. Kept as the mapping (a dict) the volume code reads
    volume: dict | None = None

    @field_validator("volume", mode="plain")
    @classmethod
    def _a_volume_mapping(cls, v: object) -> dict | None:
        if v is None:
            return None
        return VolumeMapping.model_validate(v, strict=False).model_dump(mode="json")

    @model_validator(mode="after")
    def _one_colour_per_class(self) -> ModelCard:
        if len(self.class_colors) != len(self.class_names):
            raise ValueError(f"class_colors must give one colour per class ({len(self.class_names)})")
        if len({tuple(c) for c in self.class_colors}) != len(self.class_colors):
            raise ValueError("two classes share a colour")
        if self.volume and self.volume.get("context") and self.channels != 3:
            raise ValueError("a model with slice context (volume context 1) takes 3 channels")
        return self

    @classmethod
    def from_experiment(cls, exp: Experiment) -> ModelCard:
        return cls(
            experiment=exp.name,
            class_names=[c.name for c in exp.classes],
            class_colors=[list(c.color) for c in exp.classes],
            width=exp.image.width,
            height=exp.image.height,
            channels=exp.image.channels,
            input_normalize=exp.model.input_normalize,
            mask_tolerance=exp.data.mask_tolerance,
            volume=exp.volume_mapping(),
        )

    def check_model(self, model: keras.Model, path: Path) -> None:
        """The model's input and output agree with the description."""
        expected_in = (self.height, self.width, self.channels)
        got_in = tuple(model.input_shape[1:])
        got_out = model.output_shape[-1]
        if got_in != expected_in or got_out != len(self.class_names):
            raise RunError(
                f"{path}: the model takes {got_in} and gives {got_out} classes, but {CARD_FILE} says "
                f"{expected_in} and {len(self.class_names)} classes; the run folder is inconsistent. "
                "Train again, or restore the files of one run"
            )

    def class_map(self) -> ClassMap:
        return ClassMap(self.class_names, [tuple(c) for c in self.class_colors], self.mask_tolerance)


def check_model_fits(card: ModelCard, exp: Experiment, run_dir: Path) -> None:
    """A model is only used with an experiment whose classes (names and colours, in order) it was trained for."""
    expected = ModelCard.from_experiment(exp)
    if (card.class_names, card.class_colors) != (expected.class_names, expected.class_colors):
        raise RunError(
            f"{run_dir}: the model was trained for classes {card.class_names} {card.class_colors}; "
            f"the experiment has {expected.class_names} {expected.class_colors}. Use the matching experiment or --model"
        )


def write_card(run_dir: Path, card: ModelCard) -> None:
    atomic_write_text(run_dir / CARD_FILE, to_json(card, indent=2))


def read_card(run_dir: Path) -> ModelCard:
    """The run's model description; a replacement a killed writer left half done is finished first."""
    from flexseg.runs import settle

    settle(run_dir)
    if is_cross_validation(run_dir):  # its folds share one description: the first trained fold's
        run_dir = model_members(run_dir)[0]
        settle(run_dir)
    try:
        return read_json(
            run_dir / CARD_FILE,
            ModelCard,
            what="flexseg model description",
            fix=f"train again, or restore {CARD_FILE} from the run",
            error=RunError,
        )
    except FileNotFoundError:
        raise RunError(
            f"{run_dir}: no trained model here ({CARD_FILE} missing); train one first with `flexseg train EXPERIMENT`"
        ) from None


def save_model(model: keras.Model, run_dir: Path) -> None:
    """Write the model atomically. Keras 3 stores optimizer state only for a compiled model,
    so callers pass an uncompiled view of the trained one (``inference_view``): weights only."""
    with atomic_path(run_dir / MODEL_FILE) as tmp:
        model.save(tmp)


def inference_view(model: keras.Model) -> keras.Model:
    """A new, uncompiled functional model over the same layers: shares the weights, no copy."""
    from flexseg import tfenv

    tfenv.load_tensorflow()
    import keras

    return keras.Model(model.inputs, model.outputs, name=model.name)


def load_model(run_dir: Path, card: ModelCard | None = None) -> keras.Model:
    """Load with Keras safe mode on: a model that needs arbitrary code to deserialise is refused.
    With ``card``, a model whose input or classes disagree with it is refused too. Its deepest
    convolutions are computed as matrix products (``matmul_conv``), as when it was trained."""
    from flexseg import tfenv

    tfenv.load_tensorflow()
    import keras

    from flexseg.model.matmul_conv import use_matmul_where_faster

    path = run_dir / MODEL_FILE
    if not path.is_file():
        raise RunError(f"{run_dir}: no {MODEL_FILE}; train first with `flexseg train EXPERIMENT`")
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as e:  # Keras raises many types for a bad archive
        if "safe_mode" in str(e):
            raise RunError(
                f"{path}: refused: loading it would run Python code stored in the file (unsafe "
                "deserialisation, e.g. a Lambda layer). flexseg loads models in Keras safe mode only; "
                "use a model trained by flexseg"
            ) from None
        raise RunError(f"{path}: cannot load this model ({type(e).__name__}: {str(e)[:300]})") from None
    if card is not None:
        card.check_model(model, run_dir / CARD_FILE)
    return use_matmul_where_faster(model)


def load_trained(run_dir: Path, expected: ModelCard | None = None) -> tuple[ModelCard, keras.Model]:
    """The run's description and model read as one version (``runs.read_consistently``: never
    one training's model.json with another's weights). With ``expected``, a description that
    changed since the caller read it is refused."""
    from flexseg.runs import read_consistently

    def read() -> tuple[ModelCard, keras.Model]:
        card = read_card(run_dir)
        return card, load_model(run_dir, card)

    card, model = read_consistently(run_dir, (CARD_FILE, MODEL_FILE), read)
    if expected is not None and card != expected:
        raise RunError(f"{run_dir}: the model was replaced while flexseg was reading it; run again")
    return card, model


def in_precision(model: keras.Model, precision: str) -> keras.Model:
    """The model computing in ``precision`` (float32, bfloat16 or float16), whatever it was trained
    in: rebuilt from its configuration with every layer in that type and the weights cast once,
    here, not at each call. The softmax head stays float32 (probabilities) and batch
    normalisation keeps float32 statistics (a mixed policy). A model already so is returned as is."""
    if {layer.dtype_policy.name for layer in model.layers[1:-1]} == {precision}:  # the input and head aside
        return model
    from flexseg import tfenv

    tfenv.load_tensorflow()
    import keras

    from flexseg.model.matmul_conv import use_matmul_where_faster

    config = model.get_config()
    for layer in config["layers"]:
        kind, settings = layer["class_name"], layer["config"]
        if kind == "InputLayer" or settings.get("name") == "probabilities":
            continue
        settings["dtype"] = (
            f"mixed_{precision}" if kind == "BatchNormalization" and precision != "float32" else precision
        )
    cast = use_matmul_where_faster(keras.Model.from_config(config))
    cast.set_weights(model.get_weights())
    return cast


def is_run_folder(folder: Path) -> bool:
    """A folder holding a trained model or a cross-validation (infer and export never write into one)."""
    return (folder / MODEL_FILE).exists() or (folder / FOLDS_FILE).exists()


def is_cross_validation(run_dir: Path) -> bool:
    return (run_dir / FOLDS_FILE).is_file()


def model_members(run_dir: Path) -> list[Path]:
    """The run folders whose models predict for ``run_dir``: itself, or for a cross-validation
    (``train --folds``) each fold that has a trained model: their ensemble."""
    if not is_cross_validation(run_dir):
        return [run_dir]
    members = sorted((p for p in run_dir.glob("fold_*") if (p / MODEL_FILE).is_file()), key=_fold_key)
    if not members:
        raise RunError(f"{run_dir}: a cross-validation without a trained fold yet; train with `flexseg train --folds`")
    return members


def _fold_key(path: Path) -> int:
    digits = path.name.removeprefix("fold_")
    return int(digits) if digits.isdigit() else 1 << 30


def trained_runs(runs_root: Path) -> list[Path]:
    if not runs_root.is_dir():
        return []
    return sorted(
        p
        for p in runs_root.iterdir()
        if ((p / CARD_FILE).is_file() and (p / MODEL_FILE).is_file()) or is_cross_validation(p)
    )


def find_model_dir(model: Path | None = None, run_dir: Path | None = None) -> Path:
    """The run folder to infer with: --model, else the experiment's run, else $FLEXSEG_MODEL,
    else the only trained run under ./runs/."""
    if model is not None:
        return model
    if run_dir is not None:
        return run_dir
    if settings.default_model() is not None:
        return settings.default_model()
    root = Path.cwd() / "runs"
    runs = trained_runs(root)
    if len(runs) == 1:
        return runs[0]
    if not runs:
        raise RunError(
            f"no trained model found: {root} holds no trained run. Train one (`flexseg train EXPERIMENT`), "
            f"or choose a model with --model RUN_DIR, an experiment, or ${settings.MODEL_ENV}"
        )
    names = ", ".join(str(r.relative_to(Path.cwd())) for r in runs)
    raise RunError(
        f"{len(runs)} trained runs found ({names}); choose one with --model RUN_DIR or ${settings.MODEL_ENV}"
    )
