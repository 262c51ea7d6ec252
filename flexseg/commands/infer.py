"""flexseg infer: prediction over folders or files, masks written at each input's original size.

A 3D volume (NIfTI) gets a label volume of the same name (``.nii.gz``) on its own grid, and with
``--volumes`` a DICOM series one named after it. How images are predicted (one model or an
ensemble, precision, test-time augmentation, tiles, volumes, post-processing) is the predictor's
(``flexseg.inference``), the same that evaluate runs; this module chooses the inputs and the
output folder, names the outputs, and writes masks, overlays and probability maps.
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from flexseg import console as out
from flexseg.config import PREDICT_BATCH
from flexseg.data.io import (
    RAW_IMAGE_SUFFIXES,
    is_dicom,
    list_images,
    read_image,
    resize,
    write_image,
    write_palette_mask,
)
from flexseg.data.volumes import (
    is_volume,
    label_volume_bytes,
    read_volume,
    to_display,
    volume_stem,
)
from flexseg.errors import ConfigError, DataError, RunError, listing
from flexseg.fsutil import atomic_write_bytes
from flexseg.inference import PredictOptions, Predictor
from flexseg.model.store import ModelCard, read_card
from flexseg.names import describe_renamed, unique_filenames
from flexseg.runs import OutputFolder, WrittenRecord, open_output, refuse_inputs

if TYPE_CHECKING:
    from flexseg.config import Experiment
    from flexseg.data.classes import ClassMap

DEFAULT_OUTPUT = "mini_test_output"  # the legacy scripts' name, inside the run folder
OVERLAY_DIR = "overlay"
PROBABILITIES_DIR = "probabilities"
OVERLAY_ALPHA = 0.45


@dataclass
class InferOptions:
    tta: bool = False  # average over the four flips (none, horizontal, vertical, both)
    tiles: bool = False  # sliding windows at the model's size instead of resizing the whole image
    overlap: float = 0.5  # of neighbouring windows, as a fraction of the window
    largest_component: bool = False  # per foreground class, keep only the largest connected component
    min_size: int = 0  # drop connected components smaller than this many pixels
    overlay: bool = False  # also write the image with the classes blended in their colours
    probabilities: bool = False  # also write the per-class probabilities (npz, float16)
    volumes: bool = False  # DICOM files grouped into series, one label volume per series
    dicom_seg: bool = False  # with volumes: also a DICOM-SEG per series, referencing it
    postprocessing: bool = True  # the post-processing a cross-validation chose (postprocessing.json)

    def __post_init__(self) -> None:
        if self.dicom_seg and not self.volumes:
            raise ConfigError("--dicom-seg writes a DICOM-SEG for each DICOM series: pass --volumes too")

    def predict_options(self) -> PredictOptions:
        """How the predictor predicts (the rest of these options are what infer writes)."""
        return PredictOptions(self.tta, self.tiles, self.overlap, self.largest_component, self.min_size)


@dataclass
class InferResult:
    model_dir: Path
    output_dir: Path
    images: int  # 2D images and volumes
    seconds: float
    volumes: int = 0
    slices: int = 0  # of the volumes
    dicom_segs: int = 0  # DICOM-SEG objects written (--dicom-seg)
    precision: str = "float32"  # what the model computed in (--precision, auto resolved)

    @property
    def images_per_second(self) -> float:
        return self.images / max(self.seconds, 1e-9)

    def to_json(self) -> dict:
        return {
            "model": str(self.model_dir),
            "output": str(self.output_dir),
            "inputs": self.images,
            "masks": self.images - self.volumes,
            "label_volumes": self.volumes,
            "volume_slices": self.slices,
            "dicom_segs": self.dicom_segs,
            "precision": self.precision,
            "seconds": round(self.seconds, 3),
            "images_per_second": round(self.images_per_second, 3),
        }


def resolve_output(output: Path | None, model_dir: Path, images: list[Path] | None, exp: Experiment = None) -> Path:
    """Where masks go: --output; else, for the experiment's own infer.images, its infer.output or
    <run>/mini_test_output; else <run>/infer/<name of the (first) images folder>."""
    if output is not None:
        return output
    own_images = exp is not None and (not images or images == [exp.infer.images])
    if own_images:
        return exp.infer.output or model_dir / DEFAULT_OUTPUT
    if not images:
        return model_dir / DEFAULT_OUTPUT
    first = images[0].resolve()
    return model_dir / "infer" / (first.name if first.is_dir() else first.parent.name)


def resolve_images(images: list[Path] | None, experiment_images: Path | None) -> list[Path]:
    """The image files to infer: every image (png, jpg, tif, bmp, DICOM) in each folder given,
    and each file given, in that order."""
    sources = list(images or ([experiment_images] if experiment_images is not None else []))
    if not sources:
        raise DataError("no images to infer: pass --images DIR or FILE (or set infer.images in the experiment)")
    files: list[Path] = []
    for source in sources:
        if source.is_dir():
            found = list_images(source, RAW_IMAGE_SUFFIXES, keep_broken_links=True)
            found += sorted(p for p in source.iterdir() if is_volume(p) and p.is_file())
            if not found:
                raise DataError(f"{source}: no images (png, jpg, tif, bmp, dcm) or volumes (nii, nii.gz) to infer")
            files += found
        elif source.is_file():
            files.append(source)
        else:
            raise DataError(f"{source}: no such image or folder")
    return files


@dataclass
class OutputNames:
    """The file names infer writes for its inputs (2D images and NIfTI volumes by path, DICOM series
    by UID): each from ``flexseg.names``, so a name never leaves the output folder, and distinct."""

    by_key: dict  # Path or SeriesInstanceUID → the mask's or label volume's file name
    renamed: list[tuple[int, str, str]]  # (input index, wanted name, given name), see flexseg.names

    @classmethod
    def plan(cls, images: list[Path], series: tuple = ()) -> "OutputNames":
        wanted = [(volume_stem(p), ".nii.gz") if is_volume(p) else (p.stem, ".png") for p in images]
        names, renamed = unique_filenames(wanted + [(s.uid, ".nii.gz") for s in series])
        return cls(dict(zip([*images, *(s.uid for s in series)], names)), renamed)

    def mask(self, key: object) -> str:
        """``a.png`` → ``a.png`` (a mask); ``a.nii.gz`` / ``a.nii`` / a series → ``<name>.nii.gz``."""
        return self.by_key[key]

    def stem(self, key: object) -> str:
        return self.by_key[key].removesuffix(".nii.gz").removesuffix(".png")

    def seg(self, uid: str) -> str:
        """A series' DICOM-SEG (infer --dicom-seg): ``<name>.seg.dcm``."""
        return self.stem(uid) + ".seg.dcm"

    def planned(self, images: list[Path], series: tuple, options: InferOptions) -> list[str]:
        """Every file infer writes, relative to the output folder."""
        flat = [p for p in images if not is_volume(p)]
        files = [self.mask(p) for p in images] + [self.mask(s.uid) for s in series]
        files += [self.seg(s.uid) for s in series if options.dicom_seg]
        files += [f"{OVERLAY_DIR}/{self.mask(p)}" for p in flat if options.overlay]
        files += [f"{PROBABILITIES_DIR}/{self.stem(p)}.npz" for p in flat if options.probabilities]
        return files


def check_output(folder: Path, planned: list[str], force: bool) -> None:
    """--force replaces only files flexseg wrote there; a name is never written twice."""
    clashes = [n for n in planned if (folder.folder / n).exists()]
    foreign = [n for n in clashes if n not in folder.record]
    if foreign:
        raise RunError(
            f"{folder.folder / foreign[0]} exists and was not written by flexseg ({len(foreign)} such "
            "file(s)); --force replaces only masks flexseg wrote. Choose another --output"
        )
    if clashes and not force:
        raise RunError(
            f"{folder.folder} already holds {len(clashes)} of the masks this would write (e.g. {clashes[0]!r}); "
            "pass --force to overwrite them, or choose --output DIR"
        )


def check_not_a_run(output_dir: Path) -> None:
    from flexseg.model.store import CARD_FILE, MODEL_FILE, is_run_folder

    if is_run_folder(output_dir) or (output_dir / CARD_FILE).exists():
        raise RunError(
            f"--output {output_dir} is a run folder (it holds {MODEL_FILE} / {CARD_FILE}); masks go into a "
            "folder of their own, e.g. --output RUN/infer/NAME"
        )


# ---------------------------------------------------------------- outputs


def overlay(image: np.ndarray, labels: np.ndarray, class_map: ClassMap, alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """The image (grey or RGB uint8) with each foreground class blended in its colour."""
    rgb = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image
    blended = rgb.astype(np.float32)
    fg = labels > 0
    blended[fg] = (1 - alpha) * blended[fg] + alpha * class_map.to_rgb(labels[fg]).astype(np.float32)
    return blended.round().astype(np.uint8)


class _Writer:
    """Writes one image's outputs: the mask, and the overlay and probabilities when asked."""

    def __init__(self, output_dir: Path, predictor: Predictor, options: InferOptions, names: OutputNames) -> None:
        self.output_dir, self.predictor, self.options, self.names = output_dir, predictor, options, names
        self.card = predictor.card
        self.class_map = self.card.class_map()
        self.palette = self.class_map.palette()
        for name, wanted in ((OVERLAY_DIR, options.overlay), (PROBABILITIES_DIR, options.probabilities)):
            if wanted:
                (output_dir / name).mkdir(parents=True, exist_ok=True)

    def __call__(self, path: Path, probs: np.ndarray, image: np.ndarray | None = None) -> None:
        from flexseg.fsutil import atomic_path

        labels = self.predictor.labels(probs)
        write_palette_mask(self.output_dir / self.names.mask(path), labels, self.palette)
        if self.options.overlay:
            image = read_image(path, channels=None) if image is None else image
            write_image(self.output_dir / OVERLAY_DIR / self.names.mask(path), overlay(image, labels, self.class_map))
        if self.options.probabilities:
            with atomic_path(self.output_dir / PROBABILITIES_DIR / (self.names.stem(path) + ".npz")) as tmp:
                with open(tmp, "wb") as f:
                    np.savez_compressed(
                        f, probabilities=probs.astype(np.float16), class_names=np.array(self.card.class_names)
                    )


def infer(
    model_dir: Path,
    images: list[Path],
    output_dir: Path,
    *,
    batch_size: int = PREDICT_BATCH,
    force: bool = False,
    options: InferOptions | None = None,
    precision: str = "auto",
) -> InferResult:
    """Predict every image of ``images`` (files) and write the outputs into ``output_dir``, the
    model computing in ``precision`` (float32, bfloat16, float16, or auto: see flexseg.precision)."""
    options = options or InferOptions()
    card: ModelCard = read_card(model_dir)
    if not images:
        raise DataError("no images to infer")
    refuse_inputs(output_dir, [("images folder", p) for p in sorted({p.parent for p in images})], "--output")
    check_not_a_run(output_dir)
    series = ()
    if options.volumes:
        from flexseg.data.dicom_series import group_series

        series = tuple(group_series(images))
        images = [p for p in images if not is_dicom(p)]
        if not series:
            raise DataError("--volumes: no DICOM files among the images to group into series")
    if options.dicom_seg:
        from flexseg.data.dicom_seg import require_highdicom

        require_highdicom()
        for one_series in series:
            for note in one_series.notes:
                out.warn(f"series {one_series.uid[:64]!r}: {note}")
    if (card.volume or {}).get("context") and any(is_dicom(p) for p in images):
        raise ConfigError(
            "this model sees each slice with its neighbours (image.context: 1), and single DICOM files have "
            "none: pass --volumes to read them as series"
        )
    volumes = [p for p in images if is_volume(p)] + list(series)
    if volumes and (options.overlay or options.probabilities):
        raise ConfigError("--overlay and --probabilities are for 2D images; a volume gets its label volume only")
    if volumes and not card.volume:
        raise RunError(
            f"{model_dir}: this model does not record how volume slices become pixels (trained before "
            "flexseg read volumes); train it again to infer on volumes, or infer on 2D slices"
        )
    names = OutputNames.plan(images, series)
    if output_dir.is_dir():  # a quick answer before the model loads; checked again once the folder is locked
        check_output(OutputFolder(output_dir, WrittenRecord(output_dir)), names.planned(images, series, options), force)
    # a model that cannot be used is refused before anything is created; a cross-validation's
    # folds predict as an ensemble, with the post-processing it chose
    predictor = Predictor.load(
        model_dir,
        precision=precision,
        options=options.predict_options(),
        postprocessing=options.postprocessing,
        batch_size=batch_size,
        expected=card,
    )
    with open_output(output_dir, "infer") as folder:
        if names.renamed:
            inputs = [p.name for p in images] + [f"series {s.uid[:64]!r}" for s in series]
            out.warn(describe_renamed(names.renamed, inputs))
        check_output(folder, names.planned(images, series, options), force)
        result = _infer(predictor, model_dir, images, output_dir, options, names, series)
    result.precision = predictor.precision
    return result


def _infer(
    predictor: Predictor,
    model_dir: Path,
    images: list[Path],
    output_dir: Path,
    options: InferOptions,
    names: OutputNames,
    series: tuple = (),
) -> InferResult:
    from flexseg.data.dicom_series import series_volume

    t0 = time.perf_counter()
    card = predictor.card
    header_window = bool(card.volume) and card.volume.get("window") == "header"
    volumes: list = [(names.mask(p), p, read_volume, None) for p in images if is_volume(p)]
    volumes += [(names.mask(s.uid), s.files[0], lambda _, s=s: series_volume(s, header_window), s) for s in series]
    images = [p for p in images if not is_volume(p)]
    unreadable: dict[Path, str] = {}  # input → why it has no output
    slices = dicom_segs = 0
    if images:
        unreadable |= _infer_images(predictor, images, output_dir, options, names)
    if volumes:
        with out.progress_bar("volumes", len(volumes)) as bar:
            for name, path, load, one_series in volumes:
                try:
                    volume = load(path)
                    labels = predictor.volume(volume)
                except DataError as e:
                    unreadable[path] = str(e)
                    out.warn(f"{e}; no label volume written")
                else:
                    atomic_write_bytes(output_dir / name, label_volume_bytes(labels, volume))
                    if options.dicom_seg and one_series is not None:
                        from flexseg.data.dicom_seg import segmentation_bytes

                        seg = segmentation_bytes(one_series, labels, card.class_names, card.class_colors)
                        atomic_write_bytes(output_dir / names.seg(one_series.uid), seg)
                        dicom_segs += 1
                    slices += to_display(labels, volume.affine, card.volume["plane"]).shape[0]  # a view
                bar.advance(1)
    seconds = time.perf_counter() - t0
    total = len(images) + len(volumes)
    if unreadable:
        others = f"the other masks are in {output_dir}" if len(unreadable) < total else "nothing was written"
        if len(unreadable) == 1:
            raise DataError(f"{next(iter(unreadable.values()))}; {others}")
        raise DataError(
            f"{len(unreadable)} of {total} inputs could not be read and have no mask "
            f"({listing([p.name for p in unreadable], 5)}); {others}. Fix or remove those files and run again "
            "with --force"
        )
    return InferResult(
        model_dir=model_dir,
        output_dir=output_dir,
        images=total,
        seconds=seconds,
        volumes=len(volumes),
        slices=slices,
        dicom_segs=dicom_segs,
    )


def _infer_images(
    predictor: Predictor,
    images: list[Path],
    output_dir: Path,
    options: InferOptions,
    names: OutputNames,
) -> dict[Path, str]:
    """Masks of 2D images; returns the unreadable ones (warned about, no mask) with the reason."""
    from flexseg.data.pipeline import image_dataset

    card, batch_size = predictor.card, predictor.batch_size
    write = _Writer(output_dir, predictor, options, names)
    unreadable: dict[Path, str] = {}

    reasons: dict[int, str] = {}

    def skip(path: Path, reason: str | None = None) -> None:
        """An unreadable image gets no mask; the others go on, and the run fails at the end naming it."""
        reason = reason or f"{path}: not a readable image (corrupt, truncated or not an image)"
        unreadable[path] = reason
        out.warn(f"{reason}; no mask written")

    with out.progress_bar("infer", len(images)) as bar, ThreadPoolExecutor(1) as writer:
        pending: deque = deque()

        def submit(*args) -> None:
            pending.append(writer.submit(write, *args))
            while len(pending) > 2 * batch_size:  # bounded, so memory stays flat on big folders
                pending.popleft().result()

        if options.tiles:
            with ThreadPoolExecutor(1) as reader:  # read the next image while this one is predicted
                upcoming = reader.submit(read_image, images[0], card.channels)
                for i, path in enumerate(images):
                    reason = None
                    try:
                        image = upcoming.result()
                    except DataError as e:
                        image, reason = None, str(e)
                    if i + 1 < len(images):
                        upcoming = reader.submit(read_image, images[i + 1], card.channels)
                    if image is None:
                        skip(path, reason)
                    else:
                        submit(path, predictor.tiled(image))
                    bar.advance(1)
        else:
            ds = image_dataset(
                images,
                width=card.width,
                height=card.height,
                channels=card.channels,
                batch_size=batch_size,
                errors=reasons,
            )
            for batch, sizes, indices in ds:
                probs = predictor.batch(np.asarray(batch))
                for p, size, i in zip(probs, sizes.numpy(), indices.numpy()):
                    if not size.any():  # unreadable (see image_dataset)
                        skip(images[int(i)], reasons.get(int(i)))
                        continue
                    # resize the probabilities, not the labels, so edges follow the soft boundary
                    submit(images[int(i)], resize(p, int(size[1]), int(size[0])))
                bar.advance(len(indices))
        while pending:
            pending.popleft().result()
    return unreadable


def infer_for(
    exp: Experiment,
    *,
    model: Path | None,
    images: list[Path],
    output: Path | None,
    batch_size: int = PREDICT_BATCH,
    force: bool = False,
    options: InferOptions | None = None,
    precision: str | None = None,
) -> InferResult:
    """``flexseg infer``: choose the model (``--model``, the experiment's run, $FLEXSEG_MODEL, the
    only run under ./runs/), the images (``--images`` or the experiment's ``infer.images``), the
    output (see ``resolve_output``) and the precision (``--precision``, else ``infer.precision``),
    check the model fits the experiment, then infer."""
    from flexseg.model.store import check_model_fits, find_model_dir

    model_dir = find_model_dir(model, exp.resolved_run_dir if exp else None)
    files = resolve_images(images, exp.infer.images if exp else None)
    if exp is not None:
        check_model_fits(read_card(model_dir), exp, model_dir)
    target = resolve_output(output, model_dir, images, exp)
    precision = precision or (exp.infer.precision if exp is not None else "auto")
    return infer(model_dir, files, target, batch_size=batch_size, force=force, options=options, precision=precision)
