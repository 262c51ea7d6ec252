"""The one predictor: what `infer`, `evaluate`, epoch-change inference and `export` run.

A ``Predictor`` holds one model, or several trained for the same experiment (an ensemble: the
mean of their class probabilities), computing in one precision, and the options of how an image
is predicted: test-time augmentation by flips, sliding windows (tiles) at the model's size for
images larger than it, post-processing of the labels. It predicts batches at the model's size,
images at their own size and volumes on their own grid, never a batch of one image
(``model.prediction``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from flexseg.config import PREDICT_BATCH
from flexseg.errors import ConfigError, RunError
from flexseg.inference.postprocess import keep_largest, postprocess
from flexseg.inference.tiles import gaussian_window, window_starts

if TYPE_CHECKING:
    import keras

    from flexseg.data.volumes import Volume
    from flexseg.model.store import ModelCard

# what the members of an ensemble must share: the same input, classes and slice mapping
_SHARED = ("class_names", "class_colors", "width", "height", "channels", "input_normalize", "volume")


@dataclass(frozen=True)
class PredictOptions:
    tta: bool = False  # average over the four flips (none, horizontal, vertical, both)
    tiles: bool = False  # sliding windows at the model's size instead of resizing the whole image
    overlap: float = 0.5  # of neighbouring windows, as a fraction of the window
    largest_component: bool = False  # per foreground class, keep only the largest connected component
    min_size: int = 0  # drop connected components smaller than this many pixels (voxels)
    # chosen by evidence after a cross-validation (flexseg.evaluation.postprocessing)
    largest_of_foreground: bool = False  # keep the largest component of all foreground together
    largest_of_classes: tuple[int, ...] = ()  # keep the largest component of each of these classes

    def with_decision(self, decision: dict | None, class_names: list[str]) -> PredictOptions:
        """These options with a recorded post-processing decision applied (None: as they are)."""
        if not decision:
            return self
        classes = tuple(class_names.index(n) for n in decision["largest_component_of_classes"] if n in class_names)
        return replace(
            self, largest_of_foreground=decision["largest_component_of_foreground"], largest_of_classes=classes
        )


class Predictor:
    """One model or an ensemble with the options of how it predicts.

    ``models`` are Keras models for one ``card`` (a list of one for a single model; ``card`` may be
    None for batches at the model's size only); ``direct`` calls them instead of
    ``predict_on_batch`` (inside training, under tf.distribute)."""

    def __init__(
        self,
        models: list[keras.Model],
        card: ModelCard | None,
        options: PredictOptions | None = None,
        batch_size: int = PREDICT_BATCH,
        precision: str = "float32",
        direct: bool = False,
    ) -> None:
        if not models:
            raise ValueError("a predictor needs at least one model")
        self.models, self.card = list(models), card
        self.options = options or PredictOptions()
        self.batch_size, self.precision, self.direct = max(1, batch_size), precision, direct

    @classmethod
    def load(
        cls,
        run: str | os.PathLike,
        *,
        precision: str = "auto",
        tta: bool = False,
        tiles: bool = False,
        overlap: float = 0.5,
        postprocessing: bool = True,
        batch_size: int = PREDICT_BATCH,
        options: PredictOptions | None = None,
        expected: ModelCard | None = None,
    ) -> Predictor:
        """The model of a run folder, loaded once, to segment images in memory as ``flexseg infer``
        segments files.

        Args:
            run: a run folder (``runs/<name>``: model.keras and model.json), or a cross-validation's
                (``train --folds``), whose trained folds predict as an ensemble.
            precision: ``auto`` (bfloat16 on CPUs with AVX512-BF16/AMX, float16 on older GPUs, else
                float32), ``float32``, ``bfloat16`` or ``float16``; the weights are cast once.
            tta: average the predictions of the four flips (``infer --tta``).
            tiles: predict an image larger than the model by overlapping windows (``infer --tiles``).
            overlap: with ``tiles``, of neighbouring windows.
            postprocessing: apply the post-processing a cross-validation chose (postprocessing.json).
            batch_size: images (or windows, or slices) per model call.
            options: all of the above but precision and batch size at once (overrides them).
            expected: a model card read earlier that the model must still match (else RunError).

        Returns:
            A Predictor; its ``card`` describes the model (classes, colours, input size).

        Raises:
            RunError: not a run folder, a damaged model or model card, members that differ.
        """
        from flexseg.inference.postprocess import read_decision
        from flexseg.model.store import model_members, read_card

        run = Path(run)
        card = expected or read_card(run)
        options = options or PredictOptions(tta=tta, tiles=tiles, overlap=overlap)
        decision = read_decision(run) if postprocessing else None
        options = options.with_decision(decision, card.class_names)
        return cls.from_runs(
            model_members(run), precision=precision, options=options, batch_size=batch_size, expected=card
        )

    @classmethod
    def from_runs(
        cls,
        model_dirs: list[Path],
        *,
        precision: str = "auto",
        options: PredictOptions | None = None,
        batch_size: int = PREDICT_BATCH,
        expected: ModelCard | None = None,
    ) -> Predictor:
        """The models of ``model_dirs`` (run folders) as one predictor, each read as one version
        and cast once to ``precision`` (auto: see flexseg.precision). Members of an ensemble must
        share their input, classes and slice mapping; ``expected`` is a description read earlier
        that the (first) model must still have."""
        from flexseg.model.store import in_precision, load_trained
        from flexseg.precision import resolve

        precision = resolve(precision, "--precision")
        cards, models = [], []
        for i, folder in enumerate(model_dirs):
            card, model = load_trained(folder, expected if i == 0 else None)
            if cards and (differ := [k for k in _SHARED if getattr(card, k) != getattr(cards[0], k)]):
                raise RunError(
                    f"{folder}: its model differs from {model_dirs[0]}'s in {', '.join(differ)}; an ensemble "
                    "averages models trained for the same experiment"
                )
            cards.append(card)
            models.append(in_precision(model, precision))
        return cls(models, cards[0], options, batch_size, precision)

    # ---------------------------------------------------------------- the Python API

    def segment(self, image: object, *, probabilities: bool = False) -> object:
        """Segment one input in memory, as ``flexseg infer`` segments a file of it.

        Args:
            image: one of
                - a NumPy array (H, W) or (H, W, C), C 1-4 (RGB order, any bit depth), as read from
                  an image file; or a list of them (predicted in batches, as infer batches a folder);
                - a path (str or Path) to an image file (png, jpg, tif, bmp, a DICOM slice), a NIfTI
                  volume, or a folder holding one DICOM series;
                - a nibabel image (a 3D volume with its affine);
                - a list of pydicom Datasets (with pixels) of one series, in any order.
            probabilities: also return the class probabilities (H, W, classes, float32) of a 2D image.

        Returns:
            For a 2D image: class indices (H, W, uint8) at the image's own size, post-processed as
            infer post-processes them; with ``probabilities`` a tuple (labels, probabilities). For
            a list: a list of those. For a volume or a DICOM series: a ``nibabel.Nifti1Image`` of
            uint8 class indices on the input's own grid, the label volume infer writes.

        Raises:
            DataError: an input flexseg cannot read or that does not fit the model.
            ConfigError: probabilities asked of a volume; a volume for a model without a slice mapping.
        """
        from flexseg.inference import inputs

        if isinstance(image, list | tuple) and image and all(isinstance(i, np.ndarray) for i in image):
            arrays = [inputs.image_array(i, self.card.channels) for i in image]
            return [self._segment_2d(p, probabilities) for p in self.images(arrays)]
        kind, value = inputs.classify(image, self.card.channels)
        if kind == "image":
            return self._segment_2d(self.images([value])[0], probabilities)
        if probabilities:
            raise ConfigError("probabilities are for 2D images; a volume gets its label volume only (as infer)")
        if not self.card.volume:
            raise ConfigError("this model does not record how volume slices become pixels; train it again")
        if kind == "series":
            from flexseg.data.dicom_series import series_volume

            value = series_volume(value, self.card.volume.get("window") == "header")
        from flexseg.data.volumes import label_volume

        return label_volume(self.volume(value), value)

    def _segment_2d(self, probs: np.ndarray, probabilities: bool) -> object:
        labels = self.labels(probs)
        return (labels, probs.astype(np.float32)) if probabilities else labels

    @property
    def num_classes(self) -> int:
        return len(self.card.class_names)

    # ---------------------------------------------------------------- at the model's size

    def batch(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities (N, H, W, classes) of a float32 batch at the model's size: the mean
        over the models, each with test-time augmentation when the options ask for it."""
        total = None
        for model in self.models:
            probs = self._with_tta(model, images)
            total = probs if total is None else total + probs
        return total if len(self.models) == 1 else total / len(self.models)

    def _with_tta(self, model: keras.Model, images: np.ndarray) -> np.ndarray:
        from flexseg.model.prediction import predict

        if not self.options.tta:
            return predict(model, images, direct=self.direct)
        total = None
        for axes in ((), (2,), (1,), (1, 2)):  # none, horizontal, vertical, both
            flipped = np.flip(images, axes) if axes else images
            probs = predict(model, np.ascontiguousarray(flipped), direct=self.direct)
            probs = np.flip(probs, axes) if axes else probs
            total = probs if total is None else total + probs
        return total / 4.0

    # ---------------------------------------------------------------- at an image's own size

    def images(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Probabilities (h, w, classes) of each image (h, w, channels) at its own size: by
        sliding windows with ``tiles``, else resized to the model, predicted and resized back
        (the probabilities, not the labels, so edges follow the soft boundary)."""
        from flexseg.data.io import resize

        if self.options.tiles:
            return [self.tiled(image) for image in images]
        out: list[np.ndarray] = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            batch = np.stack([resize(im, self.card.width, self.card.height) for im in chunk]).astype(np.float32)
            out += [resize(p, im.shape[1], im.shape[0]) for p, im in zip(self.batch(batch), chunk)]
        return out

    def tiled(self, image: np.ndarray) -> np.ndarray:
        """Probabilities (H, W, classes) of one image by sliding windows of the model's size,
        blended with Gaussian weights so no seams show. An image smaller than the window in a
        direction is padded by reflection there and cropped back."""
        h, w = image.shape[:2]
        th, tw = self.card.height, self.card.width
        pad_h, pad_w = max(0, th - h), max(0, tw - w)
        padded = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect") if pad_h or pad_w else image
        H, W = padded.shape[:2]
        weight = gaussian_window(th, tw)
        total = np.zeros((H, W, self.num_classes), np.float32)
        norm = np.zeros((H, W, 1), np.float32)
        overlap = self.options.overlap
        corners = [(y, x) for y in window_starts(H, th, overlap) for x in window_starts(W, tw, overlap)]
        for i in range(0, len(corners), self.batch_size):
            chunk = corners[i : i + self.batch_size]
            batch = np.stack([padded[y : y + th, x : x + tw] for y, x in chunk]).astype(np.float32)
            for (y, x), probs in zip(chunk, self.batch(batch)):
                total[y : y + th, x : x + tw] += probs * weight[..., None]
                norm[y : y + th, x : x + tw] += weight[..., None]
        return (total / norm)[:h, :w]

    def labels(self, probs: np.ndarray) -> np.ndarray:
        """Class indices (uint8) of probabilities (..., classes), post-processed as the options say."""
        return self.postprocess(probs.argmax(-1).astype(np.uint8), probs.shape[-1])

    def postprocess(self, labels: np.ndarray, num_classes: int) -> np.ndarray:
        """Class indices (a mask, or a label volume in 3D) post-processed as the options say."""
        o = self.options
        labels = postprocess(labels, num_classes, o.largest_component, o.min_size)
        if o.largest_of_foreground or o.largest_of_classes:
            labels = keep_largest(labels, together=o.largest_of_foreground, classes=o.largest_of_classes)
        return labels

    # ---------------------------------------------------------------- volumes

    def volume(self, volume: Volume) -> np.ndarray:
        """The label volume of one volume: uint8 class indices on the input's own grid (its shape
        and voxel order), slices mapped as the model's training slices were (the card's volume
        mapping), post-processed in 3D. Memory: the volume, its 8-bit slices and labels, and one
        batch of slices."""
        from flexseg.data.volumes import display_pixels, from_display, slice_channels

        mapping = self.card.volume
        plane, context = mapping["plane"], int(mapping.get("context", 0))
        pixels = display_pixels(volume, mapping)
        slices, rows, cols = pixels.shape
        labels = np.empty((slices, rows, cols), np.uint8)
        for start in range(0, slices, self.batch_size):
            stop = min(start + self.batch_size, slices)
            images = [slice_channels(pixels, k, context, self.card.channels) for k in range(start, stop)]
            labels[start:stop] = np.stack([p.argmax(-1) for p in self.images(images)])
        return from_display(self.postprocess(labels, self.num_classes), volume.affine, plane)
