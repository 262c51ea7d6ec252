"""``split.json``: what ``flexseg split`` wrote (every file, its pair, group and split or fold, how
its pixels were made; the volumes slices were cut from), its schema, its one writer and its one
reader. ``evaluate`` takes pixel spacings and source volumes from it, ``train`` the DICOM windows
and the slice mapping, ``split`` and the demo which files are theirs."""

from __future__ import annotations

import functools
import re
from pathlib import Path

from pydantic import Field

from flexseg.errors import DataError
from flexseg.schema import Pair, Record, Triple, read_json, to_json

MANIFEST = "split.json"


class SplitFile(Record):
    """One pair as written: a 2D image, or one slice of a volume (``volume`` and ``slice_index``)."""

    image: str  # the source file names
    mask: str
    group: str  # the patient (or the file itself) kept in one split
    split: str  # train / valid / test; with folds, "train/valid" or "test"
    fold: int | None = None
    image_conversion: str = ""  # how the pixels were made: "as is", "header window C=… W=…", ...
    dicom_window: Pair | None = None
    dicom_inverted: bool | None = None
    output_image: str  # relative to the split folder: images/<name>
    output_mask: str
    pixel_spacing_mm: Pair | None = None  # row, column
    volume: str | None = None  # the source volume's file name, for a slice
    slice_index: int | None = Field(None, ge=0)


class SourceVolume(Record):
    """A volume the split cut into slices."""

    mask: str
    shape: list[int]
    affine: list[list[float]]
    plane: str
    spacing_mm: Triple  # slice, row, column
    slices: int = Field(ge=0)
    empty_slices_left_out: int = Field(0, ge=0)


class SplitManifest(Record):
    flexseg_version: str
    experiment: str
    created: str
    images: str  # the source folders
    masks: str
    pairing: str
    grouping: str
    ratios: dict[str, float]
    seed: int | None = None
    folds: int | None = None
    counts: dict[str, int]
    groups: dict[str, int]
    volumes: dict[str, SourceVolume] = {}
    volume_mapping: dict | None = None  # Experiment.volume_mapping() the slices were made by
    unpaired_images: list[str] = []
    unpaired_masks: list[str] = []
    files: list[SplitFile]

    def spacings(self) -> dict[str, tuple[float, float]]:
        """Pixel spacing (mm, row and column) by output file stem, where it is known."""
        return {Path(f.output_image).stem: tuple(f.pixel_spacing_mm) for f in self.files if f.pixel_spacing_mm}

    def slice_origins(self) -> dict[str, tuple[str, int]]:
        """Output image name → (source volume, slice index) for slices cut from volumes."""
        return {
            Path(f.output_image).name: (f.volume, f.slice_index)
            for f in self.files
            if f.volume is not None and f.slice_index is not None
        }

    def output_names(self) -> set[str]:
        """The file names split wrote (images and masks)."""
        return {Path(name).name for f in self.files for name in (f.output_image, f.output_mask)}


def manifest_text(manifest: SplitManifest) -> str:
    return to_json(manifest)


def read_manifest(folder: Path) -> SplitManifest | None:
    """The ``split.json`` in ``folder`` (a data root); None when there is none (data prepared by
    other means); a DataError naming it when it is damaged or not flexseg's. Read and checked
    once per version of the file (evaluate asks for its spacings, volumes and checks apart)."""
    path = folder / MANIFEST
    try:
        stat = path.stat()
    except OSError:
        return None
    if not path.is_file():
        return None
    return _read(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _read(path: Path, mtime_ns: int, size: int) -> SplitManifest:
    """``path`` as read at this version (its modification time and size are the cache key)."""
    return read_json(
        path,
        SplitManifest,
        what="flexseg split manifest",
        fix="run flexseg split again (--force), or remove it if the data were prepared by other means",
        error=DataError,
    )


def read_split_manifest(split_dir: Path) -> SplitManifest | None:
    """The manifest beside a split folder (``data.root/train``); for a fold's split
    (``data.root/fold_k/train``) the one in data.root."""
    home = split_dir.parent
    if not (home / MANIFEST).exists() and re.fullmatch(r"fold_\d+", home.name):
        home = home.parent
    return read_manifest(home)
