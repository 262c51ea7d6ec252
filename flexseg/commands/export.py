"""flexseg export: the trained model for other runtimes, checked against Keras.

Formats: ``savedmodel`` (TensorFlow SavedModel with a ``serve`` signature), ``tflite``
(TensorFlow Lite, float32) and ``onnx`` (through tf2onnx, in bounded memory: see ``_to_onnx``;
it needs tf2onnx and, for the check, onnxruntime: ``pip install -e '.[onnx]'``). Every export is run on a few images and
compared with the Keras model; the largest absolute difference of the class probabilities is
reported and the export fails above the tolerance. ``model.json`` (classes, colours, input
size, normalisation) is written beside it, so the export describes itself.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from flexseg import runs
from flexseg.errors import ConfigError, RunError
from flexseg.fsutil import atomic_write_text
from flexseg.inference import Predictor
from flexseg.model.store import (
    CARD_FILE,
    MODEL_FILE,
    ModelCard,
    in_precision,
    is_cross_validation,
    is_run_folder,
    load_trained,
)

if TYPE_CHECKING:
    import keras

FORMATS = ("savedmodel", "tflite", "onnx")
OUTPUT_NAMES = {"savedmodel": "savedmodel", "tflite": "model.tflite", "onnx": "model.onnx"}
DEFAULT_TOLERANCE = 1e-4


@dataclass
class ExportResult:
    format: str
    path: Path  # the exported model (a folder for savedmodel)
    max_abs_diff: float
    images_checked: int
    tolerance: float


def check_images(run_dir: Path, card: ModelCard, count: int = 4) -> np.ndarray:
    """Up to ``count`` images at the model's size to compare on: the run's infer.images (from its
    experiment.yaml) when there are two or more, else seeded random images."""
    from flexseg.config import load_experiment
    from flexseg.data.io import RAW_IMAGE_SUFFIXES, list_images, read_image, resize
    from flexseg.errors import FlexsegError

    try:
        folder = load_experiment(run_dir / "experiment.yaml").infer.images
    except FlexsegError:  # a run folder without a readable experiment: check on random images
        folder = None
    if folder is not None and folder.is_dir():
        paths = list_images(folder, RAW_IMAGE_SUFFIXES)[:count]
        if len(paths) >= 2:  # never a batch of one (flexseg.model.prediction)
            return np.stack([resize(read_image(p, card.channels), card.width, card.height) for p in paths]).astype(
                np.float32
            )
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (count, card.height, card.width, card.channels)).astype(np.float32)


def _refuse_overwrite(folder: Path, name: str, recorded: set[str], force: bool) -> None:
    """Refuse to write ``name`` into ``folder`` over a file (it or the model card) that flexseg
    did not write, or over its own earlier export without ``force``."""
    for existing in (name, CARD_FILE):
        if (folder / existing).exists() and not any(n.split("/")[0] == existing for n in recorded):
            raise RunError(
                f"{folder / existing} exists and was not written by flexseg export; it is never "
                "overwritten. Choose another --output"
            )
    if (folder / name).exists() and not force:
        raise RunError(f"{folder / name} already exists; pass --force to replace it, or choose --output DIR")


def export(
    run_dir: Path, fmt: str, output: Path | None = None, *, tolerance: float = DEFAULT_TOLERANCE, force: bool = False
) -> ExportResult:
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt[:40]!r}: choose one of {', '.join(FORMATS)}")
    if is_cross_validation(run_dir):
        raise ConfigError(
            f"{run_dir} is a cross-validation (its folds predict as an ensemble, which one file of these formats "
            f"does not hold); export one fold: flexseg export {run_dir / 'fold_0'} --format {fmt}"
        )
    folder = Path(os.path.abspath(output or run_dir / "export" / fmt))
    if is_run_folder(folder):
        raise RunError(
            f"--output {folder} is a run folder (it holds {MODEL_FILE}); an export never writes into a run. "
            "Choose an empty or new folder"
        )
    name = OUTPUT_NAMES[fmt]
    if folder.is_dir():  # a quick answer before the model loads; checked again once the folder is locked
        _refuse_overwrite(folder, name, runs.WrittenRecord(folder).names, force)
    card, model = load_trained(run_dir)
    model = in_precision(model, "float32")  # portable: every runtime computes float32
    with runs.open_output(folder, "export") as handle:
        _refuse_overwrite(folder, name, handle.record.names, force)
        images = check_images(run_dir, card)
        expected = Predictor([model], card).batch(images)  # what infer computes, in float32
        # the new export is built and checked in the staging folder; the old one stays until then
        with runs.staged(handle) as staging:
            written = staging / name
            if fmt == "savedmodel":
                _to_savedmodel(model, card, written)
                actual = _run_savedmodel(written, images)
            elif fmt == "tflite":
                saved = staging / "savedmodel-for-tflite"
                _to_savedmodel(model, card, saved)
                written.write_bytes(_to_tflite(saved))
                actual = _run_tflite(written, images)
            else:
                frozen = _frozen_graph(model, card)
                del model  # its memory (NBM: 1 GB with TensorFlow's copies) goes before the conversion's comes
                _to_onnx(frozen, written)
                actual = _run_onnx(written, images)
            diff = float(np.abs(actual - expected).max())
            if not np.isfinite(diff) or diff > tolerance:
                raise RunError(
                    f"the {fmt} export differs from the Keras model by {diff:.3g} in probability "
                    f"(tolerance {tolerance:g}) on {len(images)} images; not written"
                )
            runs.adopt(staging, written)
            card_json = json.loads((run_dir / CARD_FILE).read_text(encoding="utf-8"))
            card_json["export"] = {
                "format": fmt,
                "file": name,
                "input": "float32 NHWC pixels 0..255"
                + (", divided by 255 inside the model" if card.input_normalize else ", fed as they are"),
                "output": "float32 NHWC class probabilities (softmax), classes in class_names order",
                "max_abs_diff_vs_keras": diff,
                "images_checked": len(images),
            }
            atomic_write_text(staging / CARD_FILE, json.dumps(card_json, indent=2) + "\n")
            runs.promote(handle, replace={name, CARD_FILE})
    return ExportResult(fmt, folder / name, diff, len(images), tolerance)


def _to_savedmodel(model: keras.Model, card: ModelCard, path: Path) -> None:
    """A SavedModel whose ``serve`` endpoint (also the ``serving_default`` signature) takes one
    float32 tensor ``image`` (N, H, W, C) and returns the probabilities."""
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name="serve",
        fn=lambda image: model(image, training=False),
        input_signature=[tf.TensorSpec((None, card.height, card.width, card.channels), tf.float32, name="image")],
    )
    archive.write_out(str(path), verbose=False)


def _run_savedmodel(path: Path, images: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    return np.asarray(loaded.serve(tf.constant(images)))


def _to_tflite(saved: Path) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
    try:
        return converter.convert()
    except Exception as e:  # the converter raises its own error types
        raise RunError(f"TFLite conversion failed: {type(e).__name__}: {str(e).splitlines()[0][:300]}") from None


def _run_tflite(path: Path, images: np.ndarray) -> np.ndarray:
    import warnings

    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "tf.lite.Interpreter is deprecated": still the one TF ships
        interpreter = tf.lite.Interpreter(model_path=str(path))
    inp, outp = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    results = []
    for image in images:  # one at a time: the converted model keeps batch 1 unless resized
        interpreter.resize_tensor_input(inp["index"], [1, *image.shape])
        interpreter.allocate_tensors()
        interpreter.set_tensor(inp["index"], image[None])
        interpreter.invoke()
        results.append(interpreter.get_tensor(outp["index"])[0])
    return np.stack(results)


@dataclass
class _FrozenGraph:
    """The model's forward pass as a TensorFlow GraphDef with its weights as constants."""

    graph_def: object  # tf.compat.v1.GraphDef; None once imported for conversion
    input_names: list[str]
    output_names: list[str]
    rename: dict[str, str]  # TensorFlow tensor names → the ONNX names ("image:0" → "image")


def _frozen_graph(model: keras.Model, card: ModelCard) -> _FrozenGraph:
    """Freeze ``model`` as tf2onnx's large-model path does: variables become constants without
    TensorFlow's grappler pass over them (which held 11 GB for NBM's 500 MB of weights)."""
    import importlib.util

    if importlib.util.find_spec("tf2onnx") is None or importlib.util.find_spec("onnxruntime") is None:
        raise ConfigError(
            "--format onnx needs tf2onnx and onnxruntime: pip install -e '.[onnx]' (or pip install tf2onnx onnxruntime)"
        )
    import tensorflow as tf

    _patch_tf2onnx()
    from tf2onnx import tf_loader
    from tf2onnx.convert import tensor_names_from_structed

    spec = tf.TensorSpec((None, card.height, card.width, card.channels), tf.float32, name="image")
    function = tf.function(lambda image: model(image, training=False)).get_concrete_function(spec)
    inputs = [t.name for t in function.inputs if t.dtype != tf.dtypes.resource]
    outputs = [t.name for t in function.outputs if t.dtype != tf.dtypes.resource]
    rename = tensor_names_from_structed(function, inputs, outputs)
    try:
        graph_def = tf_loader.from_function(function, inputs, outputs, large_model=True)
    except Exception as e:  # tf2onnx raises many types
        raise RunError(f"ONNX conversion failed: {type(e).__name__}: {str(e).splitlines()[0][:300]}") from None
    return _FrozenGraph(graph_def, inputs, outputs, rename)


def _to_onnx(frozen: _FrozenGraph, path: Path) -> None:
    """The frozen graph as an ONNX file, in memory a few times the weights (NBM, 125 M parameters:
    4.5 GB at the peak, where Keras' ``model.export(format="onnx")`` passed 24 GB and was killed).

    Keras' exporter calls tf2onnx with its ONNX optimizers: each of their ~25 passes writes every
    constant into the node protos again (protobuf keeps the old copies: +500 MB a pass for NBM) and
    deep-copies the graph first. They are left out here: onnxruntime folds the transposes and
    constants itself when it loads the model. Each intermediate is dropped once the next exists."""
    import gc

    import tensorflow as tf
    from tf2onnx import optimizer
    from tf2onnx.tfonnx import process_tf_graph

    try:
        with tf.Graph().as_default() as graph:
            tf.import_graph_def(frozen.graph_def, name="")
            frozen.graph_def = None
            gc.collect()
            onnx_graph = process_tf_graph(
                graph,
                continue_on_error=False,
                input_names=frozen.input_names,
                output_names=frozen.output_names,
                tensors_to_rename=frozen.rename,
            )
        del graph
        gc.collect()
        onnx_graph = optimizer.optimize_graph(onnx_graph, catch_errors=False, optimizers={})
        proto = onnx_graph.make_model("flexseg FlexUNet")
        del onnx_graph
        gc.collect()
    except Exception as e:  # tf2onnx raises many types
        raise RunError(f"ONNX conversion failed: {type(e).__name__}: {str(e).splitlines()[0][:300]}") from None
    with open(path, "wb") as f:
        f.write(proto.SerializeToString())


def _patch_tf2onnx() -> None:
    """tf2onnx 1.16/1.17 use NumPy aliases that NumPy 2 removed; Keras ships the patch it applies
    before its own ONNX export."""
    try:
        from keras.src.export.tf2onnx_lib import patch_tf2onnx
    except ImportError:  # a Keras without it: a tf2onnx that does not need it
        return
    patch_tf2onnx()


def _run_onnx(path: Path, images: np.ndarray) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.asarray(session.run(None, {name: images})[0])
