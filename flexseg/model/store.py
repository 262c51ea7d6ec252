"""A trained model in its run folder: the weights-only .keras file and the JSON that describes it."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from flexseg import __version__
from flexseg.data.classes import ClassMap
from flexseg.errors import RunError
from flexseg.fsutil import atomic_path, atomic_write_text

MODEL_FILE = "model.keras"
CARD_FILE = "model.json"
MODEL_ENV = "FLEXSEG_MODEL"


@dataclass
class ModelCard:
    """What inference needs to know about a model, so a run folder is self-describing."""

    experiment: str
    class_names: list[str]
    class_colors: list[list[int]]
    width: int
    height: int
    channels: int
    input_normalize: bool
    mask_tolerance: float = 60.0
    flexseg_version: str = __version__
    training: dict = field(default_factory=dict)  # epochs run, best epoch, best val_loss

    @classmethod
    def from_experiment(cls, exp) -> "ModelCard":
        return cls(
            experiment=exp.name,
            class_names=[c.name for c in exp.classes],
            class_colors=[list(c.color) for c in exp.classes],
            width=exp.image.width,
            height=exp.image.height,
            channels=exp.image.channels,
            input_normalize=exp.model.input_normalize,
            mask_tolerance=exp.data.mask_tolerance,
        )

    def class_map(self) -> ClassMap:
        return ClassMap(self.class_names, [tuple(c) for c in self.class_colors], self.mask_tolerance)


def check_model_fits(card: ModelCard, exp, run_dir: Path) -> None:
    """A model is only used with an experiment whose classes (names and colours, in order) it was trained for."""
    expected = ModelCard.from_experiment(exp)
    if (card.class_names, card.class_colors) != (expected.class_names, expected.class_colors):
        raise RunError(
            f"{run_dir}: the model was trained for classes {card.class_names} {card.class_colors}; "
            f"the experiment has {expected.class_names} {expected.class_colors}. Use the matching experiment or --model"
        )


def write_card(run_dir: Path, card: ModelCard) -> None:
    atomic_write_text(run_dir / CARD_FILE, json.dumps(asdict(card), indent=2) + "\n")


def read_card(run_dir: Path) -> ModelCard:
    path = run_dir / CARD_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return ModelCard(**data)
    except FileNotFoundError:
        raise RunError(f"{run_dir}: no trained model here ({CARD_FILE} missing); train one first with `flexseg train EXPERIMENT`") from None
    except (ValueError, TypeError) as e:
        raise RunError(f"{path}: not a flexseg model description ({e})") from None


def save_model(model, run_dir: Path) -> None:
    """Write the model atomically. Keras 3 stores optimizer state only for a compiled model,
    so callers pass an uncompiled view of the trained one (``inference_view``): weights only."""
    with atomic_path(run_dir / MODEL_FILE) as tmp:
        model.save(tmp)


def inference_view(model):
    """A new, uncompiled functional model over the same layers: shares the weights, no copy."""
    import keras

    return keras.Model(model.inputs, model.outputs, name=model.name)


def load_model(run_dir: Path):
    """Load with Keras safe mode on: a model that needs arbitrary code to deserialise is refused."""
    import keras

    path = run_dir / MODEL_FILE
    if not path.is_file():
        raise RunError(f"{run_dir}: no {MODEL_FILE}; train first with `flexseg train EXPERIMENT`")
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as e:  # Keras raises many types for a bad archive
        if "safe_mode" in str(e):
            raise RunError(f"{path}: refused: loading it would run Python code stored in the file (unsafe "
                           "deserialisation, e.g. a Lambda layer). flexseg loads models in Keras safe mode only; "
                           "use a model trained by flexseg") from None
        raise RunError(f"{path}: cannot load this model ({type(e).__name__}: {e})") from None


def trained_runs(runs_root: Path) -> list[Path]:
    if not runs_root.is_dir():
        return []
    return sorted(p for p in runs_root.iterdir() if (p / CARD_FILE).is_file() and (p / MODEL_FILE).is_file())


def find_model_dir(model: Path | None = None, run_dir: Path | None = None) -> Path:
    """The run folder to infer with: --model, else the experiment's run, else $FLEXSEG_MODEL,
    else the only trained run under ./runs/."""
    if model is not None:
        return model
    if run_dir is not None:
        return run_dir
    if os.environ.get(MODEL_ENV):
        return Path(os.environ[MODEL_ENV])
    root = Path.cwd() / "runs"
    runs = trained_runs(root)
    if len(runs) == 1:
        return runs[0]
    if not runs:
        raise RunError(
            f"no trained model found: {root} holds no trained run. Train one (`flexseg train EXPERIMENT`), "
            f"or choose a model with --model RUN_DIR, an experiment, or ${MODEL_ENV}"
        )
    names = ", ".join(str(r.relative_to(Path.cwd())) for r in runs)
    raise RunError(f"{len(runs)} trained runs found ({names}); choose one with --model RUN_DIR or ${MODEL_ENV}")
