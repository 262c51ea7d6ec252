"""flexseg split: a master folder of raw images and masks → ``train|valid|test/images|masks``.

Pairs are made by an explicit rule (never by two string-sorted lists), assigned to splits by
group (patient) so that no group spans two splits, and written into a temporary folder that
is renamed into place at the end. Images are copied (DICOM windowed to 8-bit PNG); masks are
rewritten as palette PNGs in the experiment's class colours. ``split.json`` records every
source file, its pair, its group and its split.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from flexseg import __version__, settings
from flexseg import console as out
from flexseg.config import SPLITS, Experiment, parse_mask_value
from flexseg.data.audit import MaskAudit
from flexseg.data.classes import ClassMap
from flexseg.data.io import (
    dicom_pixel_spacing,
    image_size,
    is_dicom,
    read_dicom,
    read_mask,
    write_image,
    write_palette_mask,
)
from flexseg.data.manifest import MANIFEST, SplitManifest, manifest_text, read_manifest
from flexseg.data.pairing import Pairing, natural_key, pair_folders, pair_volume_folders
from flexseg.data.volumes import (
    check_same_grid,
    class_indices,
    display_spacing,
    intensity_to_uint8,
    is_volume,
    read_volume,
    slice_channels,
    to_display,
    volume_stem,
)
from flexseg.errors import ConfigError, DataError
from flexseg.fsutil import atomic_write_text, exchange, public_mode
from flexseg.names import describe_renamed, unique_filenames
from flexseg.runs import clean_leftovers, folder_lock

if TYPE_CHECKING:
    from collections.abc import Callable

# what a folder written by `flexseg split` may hold; --force replaces only such a folder
SPLIT_OUTPUTS = (*SPLITS, MANIFEST)
_FOLD_DIR = re.compile(r"^fold_\d+$")


@dataclass
class SplitPlan:
    """What ``write_split`` will do: every pair with its group and its place."""

    images_dir: Path
    masks_dir: Path
    output: Path
    pairing: Pairing
    groups: list[str]  # one per pair
    assignment: list[str]  # one per pair: train | valid | test, or "test" / "fold_K" with folds
    folds: int | None = None
    grouping: str = "each file is its own group"
    force: bool = False  # the output may be replaced (when it holds only a flexseg split)

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(self.assignment).items(), key=lambda kv: _place_order(kv[0])))

    def group_counts(self) -> dict[str, int]:
        groups: dict[str, set] = {}
        for g, place in zip(self.groups, self.assignment):
            groups.setdefault(place, set()).add(g)
        return {place: len(groups[place]) for place in self.counts()}

    def datasets(self) -> list[tuple[Path, dict[str, list[int]]]]:
        """Each dataset folder to write, with the pair indices of its train/valid/test."""
        if not self.folds:
            return [(Path("."), {s: [i for i, p in enumerate(self.assignment) if p == s] for s in SPLITS})]
        test = [i for i, p in enumerate(self.assignment) if p == "test"]
        out_ = []
        for k in range(self.folds):
            fold = f"fold_{k}"
            out_.append(
                (
                    Path(fold),
                    {
                        "train": [i for i, p in enumerate(self.assignment) if p.startswith("fold_") and p != fold],
                        "valid": [i for i, p in enumerate(self.assignment) if p == fold],
                        "test": test,
                    },
                )
            )
        return out_


@dataclass
class SplitResult:
    output: Path
    counts: dict[str, int]
    seconds: float
    dicom_notes: Counter = field(default_factory=Counter)
    volume_slices: int = 0  # slices written from volumes
    audit: MaskAudit = field(default_factory=MaskAudit)


# ---------------------------------------------------------------- planning


def plan_split(
    exp: Experiment,
    images: Path | None = None,
    masks: Path | None = None,
    output: Path | None = None,
    folds: int | None = None,
    allow_unpaired: bool = False,
    force: bool = False,
) -> SplitPlan:
    """Pair, group and assign; checks everything that can be checked before writing."""
    spec = exp.split
    images_dir = _required(images or spec.images, "split.images", "--images")
    masks_dir = _required(masks or spec.masks, "split.masks", "--masks")
    output = _required(output or exp.data.root, "data.root", "--output").resolve()
    for folder, key, option in ((images_dir, "split.images", "--images"), (masks_dir, "split.masks", "--masks")):
        if not folder.is_dir():
            raise DataError(
                f"{folder}: folder not found; set {key} in the experiment "
                f"to your raw {option[2:]} folder, or pass {option} DIR"
            )
    from_volumes = any(is_volume(p) for p in images_dir.iterdir())
    if exp.image.context and not from_volumes:
        raise ConfigError(
            f"image.context: {exp.image.context} takes neighbouring slices from volumes, and {images_dir} holds "
            "no volume (nii, nii.gz); set image.context: 0 for 2D images"
        )
    _check_output(output, [images_dir, masks_dir], force)

    if from_volumes:
        pairing = pair_volume_folders(images_dir, masks_dir)  # each volume becomes slices (data.volumes)
    else:
        pairing = pair_folders(images_dir, masks_dir, spec.pairing, spec.image_pattern, spec.mask_pattern)
    if not pairing.complete:
        message = f"unpaired files (split.pairing: {spec.pairing}): {pairing.describe_unpaired()}"
        if not allow_unpaired:
            raise DataError(
                message + ". Fix the folders or the pairing rule, or pass --allow-unpaired to leave them out"
            )
        out.warn(message + "; left out (--allow-unpaired)")
    if not pairing.pairs:
        raise DataError(f"no image in {images_dir} pairs with a mask in {masks_dir} (split.pairing: {spec.pairing})")
    _check_pairs(pairing.pairs)

    groups, grouping = _groups(exp, [image for image, _ in pairing.pairs])
    folds = folds or spec.folds
    sizes = Counter(groups)
    if folds:
        if folds > len(sizes):
            raise ConfigError(
                f"--folds {folds}: only {len(sizes)} groups to spread over the folds; use at most {len(sizes)} folds"
            )
        held_out = assign_groups(
            sizes, {"train": 1.0 - spec.ratios["test"], "valid": 0.0, "test": spec.ratios["test"]}, spec.seed
        )
        rest = {g: n for g, n in sizes.items() if held_out[g] != "test"}
        fold_of = assign_folds(rest, folds, spec.seed)
        place_of = {g: "test" if held_out[g] == "test" else f"fold_{fold_of[g]}" for g in sizes}
    else:
        place_of = assign_groups(sizes, spec.ratios, spec.seed)
    plan = SplitPlan(
        images_dir, masks_dir, output, pairing, groups, [place_of[g] for g in groups], folds, grouping, force
    )
    wanted = ["test"] if folds else [s for s in SPLITS if spec.ratios[s] > 0]
    empty = [s for s in wanted if not plan.counts().get(s)]
    if empty:
        out.warn(f"{', '.join(empty)} split(s) got no files: only {len(sizes)} groups for ratios {spec.ratios}")
    return plan


def assign_groups(sizes: dict[str, int], ratios: dict[str, float], seed: int) -> dict[str, str]:
    """Each group to a split so the split sizes approach ``ratios``; no group is divided.

    Groups are shuffled with ``seed``, then taken largest first, each to the split furthest
    below its target. With one file per group the sizes match the ratios to ±1 file.
    """
    total = sum(sizes.values())
    targets = {s: ratios.get(s, 0.0) * total for s in SPLITS if ratios.get(s, 0.0) > 0}
    filled = dict.fromkeys(targets, 0)
    out_ = {}
    for group in _shuffled_large_first(sizes, seed):
        split = max(targets, key=lambda s: (targets[s] - filled[s]) / targets[s])
        out_[group] = split
        filled[split] += sizes[group]
    return out_


def assign_folds(sizes: dict[str, int], folds: int, seed: int) -> dict[str, int]:
    """Each group to one of ``folds`` folds of about equal size (largest groups first)."""
    filled = [0] * folds
    out_ = {}
    for group in _shuffled_large_first(sizes, seed):
        k = min(range(folds), key=lambda i: filled[i])
        out_[group] = k
        filled[k] += sizes[group]
    return out_


def _shuffled_large_first(sizes: dict[str, int], seed: int) -> list[str]:
    order = sorted(sizes, key=natural_key)
    np.random.default_rng(seed).shuffle(order)
    return sorted(order, key=lambda g: -sizes[g])  # stable: the shuffle decides among equals


def _groups(exp: Experiment, images: list[Path]) -> tuple[list[str], str]:
    spec = exp.split
    if spec.group_pattern:
        rx = re.compile(spec.group_pattern)
        matches = [rx.search(p.name) for p in images]
        missing = [p.name for p, m in zip(images, matches) if m is None]
        if missing:
            raise DataError(
                f"split.group_pattern {spec.group_pattern!r} does not match {len(missing)} image name(s), "
                f"e.g. {missing[:3]}; every file needs a group"
            )
        groups = [m.group("group") if "group" in rx.groupindex else m.group(1) for m in matches]
        return groups, f"group_pattern {spec.group_pattern!r}"
    if spec.groups_csv:
        table = _read_groups_csv(spec.groups_csv)
        groups, missing = [], []
        for p in images:
            g = table.get(p.name, table.get(p.stem))
            missing.append(p.name) if g is None else groups.append(g)
        if missing:
            raise DataError(
                f"{spec.groups_csv}: no group for {len(missing)} image(s), "
                f"e.g. {missing[:3]}; add rows file,group for them"
            )
        return groups, f"groups_csv {spec.groups_csv}"
    if images and is_volume(images[0]):
        return [_volume_group(p) for p in images], "each volume is its own group (its slices stay together)"
    return [p.stem for p in images], "each file is its own group (no split.group_pattern or split.groups_csv)"


def _volume_group(path: Path) -> str:
    return re.sub(r"_\d{4}$", "", volume_stem(path))  # nnU-Net's channel suffix is not part of the case


def _read_groups_csv(path: Path) -> dict[str, str]:
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise DataError(f"{path}: cannot read the groups CSV ({e.strerror})") from None
    if not rows or not {"file", "group"} <= set(rows[0]):
        raise DataError(f"{path}: the groups CSV needs a header line with the columns file,group")
    return {row["file"].strip(): row["group"].strip() for row in rows}


def _required(value: Path | None, key: str, option: str) -> Path:
    if value is None:
        raise ConfigError(f"{key} is not set; set it in the experiment or pass {option}")
    return Path(value)


def _check_output(output: Path, sources: list[Path], force: bool) -> None:
    for src in sources:
        src = src.resolve()
        if output == src or output.is_relative_to(src) or src.is_relative_to(output):
            raise ConfigError(
                f"the output {output} overlaps the source folder {src}; the sources are never written to, "
                "choose another --output (data.root)"
            )
    if not output.exists() or not any(p for p in output.iterdir() if not p.name.startswith(".flexseg")):
        return
    if not force:
        raise DataError(f"{output} already exists; pass --force to replace it, or choose another --output (data.root)")
    foreign = foreign_files(output)
    if not (output / MANIFEST).exists() or foreign:
        what = (
            f"it also holds {foreign[0]}" + (f" and {len(foreign) - 1} more" if len(foreign) > 1 else "")
            if foreign
            else f"it has no {MANIFEST}"
        )
        raise DataError(
            f"{output} was not written by flexseg split ({what}); --force replaces only a folder that holds "
            "nothing but flexseg's split. Move those files away or choose another --output"
        )


def foreign_files(output: Path) -> list[str]:
    """Files in a split folder that neither flexseg split nor flexseg augment wrote."""
    from flexseg.data.augmented import AUGMENT_RECORD, source_stem
    from flexseg.runs import STAGING_DIR

    try:
        manifest = read_manifest(output)
    except DataError:
        manifest = None  # a damaged manifest lists nothing: every file counts as foreign
    ours = manifest.output_names() if manifest else set()
    foreign = []
    for path in sorted(output.rglob("*")):
        if path.is_dir():
            continue
        rel = path.relative_to(output)
        name, parts = path.name, rel.parts
        if rel.as_posix() == MANIFEST or name.startswith(".flexseg") or STAGING_DIR in parts or name == AUGMENT_RECORD:
            continue
        in_split = len(parts) >= 3 and parts[-2] in ("images", "masks") and (parts[-3] in SPLITS)
        if in_split and (name in ours or source_stem(path.stem) is not None):
            continue
        foreign.append(rel.as_posix())
    return foreign


def _check_pairs(pairs: list[tuple[Path, Path]]) -> None:
    if pairs and is_volume(pairs[0][0]):
        return  # volumes: shapes and grids are checked as each is read (_write_volume)
    stems = Counter(image.stem for image, _ in pairs)
    clash = [s for s, n in stems.items() if n > 1]
    if clash:
        raise DataError(
            f"several paired images share the name stem {clash[0]!r}; output files are named by stem, rename them"
        )
    mismatched = []
    for image, mask in pairs:
        image_wh, mask_wh = image_size(image), image_size(mask)
        if image_wh != mask_wh:
            mismatched.append(f"{image.name} {image_wh} ↔ {mask.name} {mask_wh}")
    if mismatched:
        raise DataError(
            f"{len(mismatched)} pair(s) of image and mask differ in size, so they are not pairs: "
            f"{'; '.join(mismatched[:3])}. Check split.pairing"
        )


# ---------------------------------------------------------------- writing


def mask_converter(exp: Experiment) -> Callable[[np.ndarray], tuple[np.ndarray, int]]:
    """Raw mask RGB → (class indices, far pixels): via split.mask_values when given, else the class colours."""
    class_map = ClassMap.from_experiment(exp)
    values = exp.split.mask_values
    if not values:

        def convert(rgb: np.ndarray) -> tuple[np.ndarray, int]:
            conv = class_map.to_indices(rgb)
            return conv.indices, conv.far_pixels

        return convert
    names = [c.name for c in exp.classes]
    raw_map = ClassMap(list(values.values()), [parse_mask_value(k) for k in values], exp.data.mask_tolerance)
    lut = np.array([names.index(n) for n in values.values()], np.uint8)

    def convert(rgb: np.ndarray) -> tuple[np.ndarray, int]:
        conv = raw_map.to_indices(rgb)
        return lut[conv.indices], conv.far_pixels

    return convert


def write_split(exp: Experiment, plan: SplitPlan, workers: int | None = None) -> SplitResult:
    """Write the plan into a temporary folder beside the output, then rename it into place. The
    output is locked (beside it: the folder is replaced whole) while it is written."""
    output = plan.output
    output.parent.mkdir(parents=True, exist_ok=True)
    with folder_lock(output, command="split"):  # inside the output: the swap moves it away with the old folder
        cleaned = clean_leftovers(output.parent, prefix=f".{output.name}.", recursive=False)
        if cleaned:
            out.warn(
                f"removed {len(cleaned)} temporary folder(s) an interrupted flexseg split left beside {output} "
                f"(e.g. {cleaned[0]})"
            )
        _check_output(output, [plan.images_dir, plan.masks_dir], plan.force)  # again: another split may have run
        return _write_locked(exp, plan, workers)


def _write_locked(exp: Experiment, plan: SplitPlan, workers: int) -> SplitResult:
    t0 = time.perf_counter()
    output = plan.output
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.partial-", dir=output.parent))
    result = SplitResult(output, plan.counts(), 0.0)
    try:
        written = _write_pairs(exp, plan, tmp, workers, result)
        if result.volume_slices:  # count slices, not volumes
            result.counts = dict(Counter(p for p, info in zip(plan.assignment, written) for _ in info["slices"]))
        _link_folds(plan, tmp, written)
        atomic_write_text(tmp / MANIFEST, manifest_text(_manifest(exp, plan, written)))
        os.chmod(tmp, public_mode(directory=True))
        _swap_into_place(tmp, output)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    result.seconds = time.perf_counter() - t0
    return result


def _write_pairs(exp: Experiment, plan: SplitPlan, tmp: Path, workers: int, result: SplitResult) -> list[dict]:
    """Write every pair once (into its first dataset folder); return what was written per pair."""
    convert = mask_converter(exp)
    palette = ClassMap.from_experiment(exp).palette()
    first_home: dict[int, Path] = {}
    for folder, members in plan.datasets():
        for split, indices in members.items():
            for i in indices:
                first_home.setdefault(i, folder / split)
    # output names through flexseg.names: bounded (room for __augNN), no line breaks, distinct
    stems, renamed = unique_filenames(
        [(volume_stem(image) if is_volume(image) else image.stem, "") for image, _ in plan.pairing.pairs]
    )
    if renamed:
        out.warn(describe_renamed(renamed, [image.name for image, _ in plan.pairing.pairs]))

    def one(i: int) -> dict:
        image, mask = plan.pairing.pairs[i]
        home, stem, window = tmp / first_home[i], stems[i], {}
        if is_volume(image):
            return {**_write_volume(exp, image, mask, home, palette, stem), "home": str(first_home[i])}
        if is_dicom(image):
            pixels, display = read_dicom(image)
            how, image_name = display.how, stem + ".png"
            write_image(home / "images" / image_name, pixels)
            if display.window is not None:  # recorded with the model: a NIfTI of the series maps the same
                window = {"dicom_window": list(display.window), "dicom_inverted": display.inverted}
        else:
            how, image_name = "copied", stem + image.suffix
            (home / "images").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(image, home / "images" / image_name)
        indices, far = convert(read_mask(mask))
        mask_name = stem + ".png"
        write_palette_mask(home / "masks" / mask_name, indices, palette)
        return {
            "image_name": image_name,
            "mask_name": mask_name,
            "how": how,
            "far": far,
            "pixels": int(indices.size),
            "home": str(first_home[i]),
            **window,
        }

    written = []
    with (
        out.progress_bar("split", len(plan.pairing.pairs)) as bar,
        ThreadPoolExecutor(workers or settings.workers()) as pool,
    ):
        for i, info in enumerate(pool.map(one, range(len(plan.pairing.pairs)))):
            written.append(info)
            bar.advance()
            result.audit.add(str(plan.pairing.pairs[i][1]), info["pixels"], info["far"])
            if "slices" in info:
                result.volume_slices += len(info["slices"])
            elif info["how"] != "copied":
                result.dicom_notes["header window" if info["how"].startswith("header") else "percentiles"] += 1
    return written


def _write_volume(exp: Experiment, image: Path, mask: Path, home: Path, palette: np.ndarray, stem: str) -> dict:
    """One image volume and its label volume as slices (the slice convention of data.volumes):
    ``<volume>_<index>.png`` images mapped by ``volume`` (window or percentiles; with
    ``image.context`` the neighbouring slices as channels) and palette masks; slices without
    foreground are kept at the rate ``split.empty_slices`` (seeded)."""
    spec = exp.volume
    scan, labels = read_volume(image), read_volume(mask)
    check_same_grid(labels, scan)
    indices = np.ascontiguousarray(to_display(class_indices(labels, exp.num_classes), labels.affine, spec.plane))
    pixels = intensity_to_uint8(to_display(scan.data, scan.affine, spec.plane), exp.volume_mapping())
    empty = [k for k in range(len(indices)) if not indices[k].any()]
    rng = np.random.default_rng([int(exp.split.seed or 0), *map(ord, volume_stem(image))])
    dropped = set(rng.permutation(empty)[: len(empty) - round(exp.split.empty_slices * len(empty))].tolist())
    digits = max(4, len(str(len(indices) - 1)))
    slices = []
    for k in range(len(indices)):
        if k in dropped:
            continue
        name = f"{stem}_{k:0{digits}d}.png"
        write_image(home / "images" / name, slice_channels(pixels, k, exp.image.context, 1))
        write_palette_mask(home / "masks" / name, indices[k], palette)
        slices.append({"image_name": name, "mask_name": name, "index": k})
    spacing = display_spacing(scan, spec.plane)
    return {
        "slices": slices,
        "how": "volume " + ("window" if spec.window is not None else "percentiles"),
        "far": 0,
        "pixels": int(indices[0].size) * len(slices),
        "volume": {
            "shape": list(scan.data.shape),
            "affine": np.round(scan.affine, 6).tolist(),
            "plane": spec.plane,
            "spacing_mm": [round(v, 6) for v in spacing],  # slice, row, column
            "slices": len(indices),
            "empty_slices_left_out": len(dropped),
        },
    }


def _names(info: dict) -> list[tuple[str, str]]:
    """(image, mask) file names a pair was written as: one pair, or a volume's slices."""
    if "slices" in info:
        return [(s["image_name"], s["mask_name"]) for s in info["slices"]]
    return [(info["image_name"], info["mask_name"])]


def _link_folds(plan: SplitPlan, tmp: Path, written: list[dict]) -> None:
    """With folds, a pair sits in several fold folders: hard links (copies where links fail)."""
    for folder, members in plan.datasets():
        for split, indices in members.items():
            for i in indices:
                home = tmp / written[i]["home"]
                if home == tmp / folder / split:
                    continue
                for image_name, mask_name in _names(written[i]):
                    for kind, name in (("images", image_name), ("masks", mask_name)):
                        target = tmp / folder / split / kind / name
                        target.parent.mkdir(parents=True, exist_ok=True)
                        try:
                            os.link(home / kind / name, target)
                        except OSError:
                            shutil.copyfile(home / kind / name, target)
    for folder, _ in plan.datasets():  # an empty split still gets its folders, so training says what is missing
        for split in SPLITS:
            for kind in ("images", "masks"):
                (tmp / folder / split / kind).mkdir(parents=True, exist_ok=True)


def _manifest(exp: Experiment, plan: SplitPlan, written: list[dict]) -> SplitManifest:
    files, volumes = [], {}
    for (image, mask), group, place, info in zip(plan.pairing.pairs, plan.groups, plan.assignment, written):
        entry = {"image": image.name, "mask": mask.name, "group": group}
        if plan.folds:
            entry["split"] = "test" if place == "test" else "train/valid"
            entry["fold"] = None if place == "test" else int(place.removeprefix("fold_"))
        else:
            entry["split"] = place
        entry["image_conversion"] = info["how"]
        entry.update({k: info[k] for k in ("dicom_window", "dicom_inverted") if k in info})
        if "slices" in info:  # a volume: an entry per slice, the volume's geometry once
            volumes[image.name] = {"mask": mask.name, **info["volume"]}
            for piece in info["slices"]:
                files.append(
                    {
                        **entry,
                        "volume": image.name,
                        "slice_index": piece["index"],
                        "output_image": f"images/{piece['image_name']}",
                        "output_mask": f"masks/{piece['mask_name']}",
                        "pixel_spacing_mm": info["volume"]["spacing_mm"][1:],
                    }
                )
            continue
        entry["output_image"] = f"images/{info['image_name']}"
        entry["output_mask"] = f"masks/{info['mask_name']}"
        if is_dicom(image) and (spacing := dicom_pixel_spacing(image)) is not None:
            entry["pixel_spacing_mm"] = list(spacing)  # row, column: evaluate gives HD95 in mm
        files.append(entry)
    counts = Counter(f["split"] for f in files) if volumes else plan.counts()
    return SplitManifest.model_validate(
        {
            "flexseg_version": __version__,
            "experiment": exp.name,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "images": str(plan.images_dir.resolve()),
            "masks": str(plan.masks_dir.resolve()),
            "pairing": exp.split.pairing,
            "grouping": plan.grouping,
            "ratios": exp.split.ratios,
            "seed": exp.split.seed,
            "folds": plan.folds,
            "counts": dict(counts),
            "groups": plan.group_counts(),
            **({"volumes": volumes, "volume_mapping": exp.volume_mapping()} if volumes else {}),
            "unpaired_images": [p.name for p in plan.pairing.lonely_images],
            "unpaired_masks": [p.name for p in plan.pairing.lonely_masks],
            "files": files,
        },
        strict=False,  # built here: tuples from lists, the schema checks the values
    )


def _swap_into_place(tmp: Path, output: Path) -> None:
    """The new split takes the old one's place in one step; ``tmp`` then holds the old one (deleted
    by the caller). Where the file system cannot exchange, two renames: a kill between them leaves
    the old split in ``.<name>.old-*``."""
    if not output.exists():
        os.replace(tmp, output)
        return
    if exchange(tmp, output):
        return
    old = Path(tempfile.mkdtemp(prefix=f".{output.name}.old-", dir=output.parent))
    os.replace(output, old / output.name)
    os.replace(tmp, output)
    shutil.rmtree(old)


def _place_order(place: str) -> tuple:
    return (SPLITS.index(place), 0) if place in SPLITS else (1, int(place.removeprefix("fold_")))
