"""flexseg stats: what a user checks before training, and the problems that spoil a score.

Per split: pairs, augmented copies, image sizes and channels, intensity statistics, class
pixel fractions and presence, empty masks. Problems: unpaired files, images and masks of
different sizes, mask pixels far from every class colour, and leakage, i.e. the same image
(by content hash of the decoded pixels) in two splits, or an augmented copy whose source
sits in another split.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from flexseg import console as out
from flexseg import settings
from flexseg.config import SPLITS, Experiment
from flexseg.data.augmented import source_stem
from flexseg.data.classes import ClassMap
from flexseg.data.io import IMAGE_SUFFIXES, read_image, read_mask, resize
from flexseg.data.pairing import pair_folders
from flexseg.errors import DataError, listing

PERCENTILES = (1, 5, 50, 95, 99)
SAMPLE_IMAGES = 16


@dataclass
class Problem:
    kind: str
    severity: str  # "error" spoils training or scores; "warning" deserves a look
    message: str
    files: list[str] = field(default_factory=list)


@dataclass
class SplitStats:
    split: str
    folder: str
    pairs: int = 0
    augmented: int = 0
    unpaired_images: list[str] = field(default_factory=list)
    unpaired_masks: list[str] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)  # "W×H" -> images
    channels: dict[str, int] = field(default_factory=dict)
    intensity: dict[str, float] = field(default_factory=dict)
    class_pixel_fraction: dict[str, float] = field(default_factory=dict)
    class_presence: dict[str, float] = field(default_factory=dict)  # fraction of masks holding the class
    empty_masks: list[str] = field(default_factory=list)  # masks with no foreground pixel
    far_pixels: int = 0
    far_files: dict[str, int] = field(default_factory=dict)


@dataclass
class StatsReport:
    experiment: str
    classes: list[str]
    splits: dict[str, SplitStats]
    problems: list[Problem]
    figures: list[str] = field(default_factory=list)
    output: Path | None = None  # the folder stats.json and the figures were written into

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def leakage(self) -> bool:
        return any(p.kind.startswith("leak") for p in self.problems)

    def to_json(self) -> dict:
        return {
            "experiment": self.experiment,
            "classes": self.classes,
            "splits": {k: asdict(v) for k, v in self.splits.items()},
            "leakage": self.leakage,
            "problems": [asdict(p) for p in self.problems],
            "figures": self.figures,
        }


@dataclass
class _FileFacts:
    name: str
    stem: str
    digest: str
    size: tuple[int, int]
    channels: int
    histogram: np.ndarray
    class_pixels: np.ndarray
    mask_size: tuple[int, int]
    far_pixels: int


def content_hash(image: np.ndarray) -> str:
    """A hash of the decoded pixels, not the file bytes: a re-encoded copy, or a grey image saved
    as RGB, is still the same image."""
    if image.shape[-1] == 3 and (image[..., 0] == image[..., 1]).all() and (image[..., 0] == image[..., 2]).all():
        image = image[..., :1]
    return hashlib.blake2b(image.tobytes() + str(image.shape).encode(), digest_size=16).hexdigest()


def _facts(pair: tuple[Path, Path], class_map: ClassMap) -> _FileFacts:
    image_path, mask_path = pair
    image = read_image(image_path, channels=None)
    conv = class_map.to_indices(read_mask(mask_path))
    digest = content_hash(image)
    return _FileFacts(
        name=image_path.name,
        stem=image_path.stem,
        digest=digest,
        size=(image.shape[1], image.shape[0]),
        channels=image.shape[-1],
        histogram=np.bincount(image.ravel(), minlength=256),
        class_pixels=np.bincount(conv.indices.ravel(), minlength=len(class_map)),
        mask_size=(conv.indices.shape[1], conv.indices.shape[0]),
        far_pixels=conv.far_pixels,
    )


def dataset_parts(exp: Experiment) -> list[tuple[str, Path]]:
    """The disjoint parts of the dataset, each (name, folder): train, valid and test, or for a
    cross-validation (``split --folds``) each fold (its ``fold_k/valid``) and the test split."""
    from flexseg.data.folds import fold_numbers

    folds = fold_numbers(exp.data.root) if exp.data.train is None else []
    if folds and not (exp.data.split_dir("train") / "images").is_dir():
        root = exp.data.root
        return [(f"fold_{k}", root / f"fold_{k}" / "valid") for k in folds] + [
            ("test", root / f"fold_{folds[0]}" / "test")
        ]
    return [(split, exp.data.split_dir(split)) for split in SPLITS]


def collect_stats(exp: Experiment, workers: int | None = None) -> StatsReport:
    """Counts, sizes, intensities and classes of each part of the dataset (``dataset_parts``), and
    the problems: unpaired files, empty parts, and leakage (the same image in two parts, an
    augmented copy whose source sits elsewhere)."""
    class_map = ClassMap.from_experiment(exp)
    splits: dict[str, SplitStats] = {}
    problems: list[Problem] = []
    facts: dict[str, list[_FileFacts]] = {}
    places = dataset_parts(exp)
    if not any((folder / "images").is_dir() for _, folder in places):
        raise DataError(
            f"no split dataset in {exp.data.split_dir('train').parent} (no train/valid/test images folders); "
            "run flexseg split EXPERIMENT first, or set data.root"
        )
    for split, folder in places:
        stats = SplitStats(split, str(folder))
        splits[split] = stats
        if not (folder / "images").is_dir() or not (folder / "masks").is_dir():
            problems.append(
                Problem(
                    "missing_split", "error", f"{split}: no {folder}/images and masks folders; run flexseg split first"
                )
            )
            facts[split] = []
            continue
        pairing = (
            pair_folders(folder / "images", folder / "masks", "stem", image_suffixes=IMAGE_SUFFIXES)
            if any((folder / "images").iterdir())
            else None
        )
        pairs = pairing.pairs if pairing else []
        if pairing and not pairing.complete:
            stats.unpaired_images = [p.name for p in pairing.lonely_images]
            stats.unpaired_masks = [p.name for p in pairing.lonely_masks]
            problems.append(
                Problem(
                    "unpaired",
                    "error",
                    f"{split}: {pairing.describe_unpaired()}",
                    stats.unpaired_images + stats.unpaired_masks,
                )
            )
        if not pairs:
            problems.append(
                Problem(
                    "empty_split",
                    "error" if split == "train" or split.startswith("fold_") else "warning",
                    f"{split}: no image/mask pairs in {folder}",
                )
            )
        with (
            out.progress_bar(f"stats {split}", len(pairs)) as bar,
            ThreadPoolExecutor(workers or settings.workers()) as pool,
        ):
            facts[split] = []
            for f in pool.map(lambda pair: _facts(pair, class_map), pairs):
                facts[split].append(f)
                bar.advance()
        _summarise(stats, facts[split], class_map, problems)
    problems += _leakage(facts)
    return StatsReport(exp.name, list(class_map.names), splits, problems)


def _summarise(stats: SplitStats, files: list[_FileFacts], class_map: ClassMap, problems: list[Problem]) -> None:
    stats.pairs = len(files)
    stats.augmented = sum(source_stem(f.stem) is not None for f in files)
    if not files:
        return
    stats.sizes = {f"{w}×{h}": n for (w, h), n in Counter(f.size for f in files).most_common()}
    stats.channels = {str(c): n for c, n in sorted(Counter(f.channels for f in files).items())}
    hist = np.sum([f.histogram for f in files], axis=0).astype(np.float64)
    values = np.arange(256)
    mean = float((hist * values).sum() / hist.sum())
    cdf = np.cumsum(hist) / hist.sum()
    stats.intensity = {
        "mean": round(mean, 2),
        "std": round(float(np.sqrt((hist * (values - mean) ** 2).sum() / hist.sum())), 2),
    }
    stats.intensity.update({f"p{q}": int(np.searchsorted(cdf, q / 100)) for q in PERCENTILES})
    pixels = np.sum([f.class_pixels for f in files], axis=0)
    present = np.sum([f.class_pixels > 0 for f in files], axis=0)
    stats.class_pixel_fraction = {n: round(float(pixels[i] / pixels.sum()), 6) for i, n in enumerate(class_map.names)}
    stats.class_presence = {n: round(float(present[i] / len(files)), 4) for i, n in enumerate(class_map.names)}
    stats.empty_masks = [f.name for f in files if f.class_pixels[1:].sum() == 0]
    stats.far_pixels = int(sum(f.far_pixels for f in files))
    stats.far_files = {f.name: f.far_pixels for f in sorted(files, key=lambda f: -f.far_pixels) if f.far_pixels}
    if stats.far_pixels:
        worst = ", ".join(f"{k} ({v})" for k, v in list(stats.far_files.items())[:3])
        problems.append(
            Problem(
                "far_mask_pixels",
                "warning",
                f"{stats.split}: {stats.far_pixels} mask pixels in {len(stats.far_files)} masks differ by more than "
                f"{class_map.tolerance:g} from every class colour (most in {worst}); check the class colours",
                list(stats.far_files),
            )
        )
    wrong = [f"{f.name} {f.size} vs mask {f.mask_size}" for f in files if f.size != f.mask_size]
    if wrong:
        problems.append(
            Problem(
                "size_mismatch",
                "error",
                f"{stats.split}: {len(wrong)} image(s) and mask(s) differ in size: {wrong[:3]}",
                wrong,
            )
        )
    if len(stats.empty_masks) == len(files):
        problems.append(Problem("no_foreground", "warning", f"{stats.split}: every mask is background only"))


def _leakage(facts: dict[str, list[_FileFacts]]) -> list[Problem]:
    problems = []
    where: dict[str, list[tuple[str, str]]] = {}
    for split, files in facts.items():
        for f in files:
            where.setdefault(f.digest, []).append((split, f.name))
    for same_content in where.values():
        splits = {s for s, _ in same_content}
        listed = [f"{s}/images/{n}" for s, n in same_content]
        if len(splits) > 1:
            problems.append(
                Problem(
                    "leak_identical_image",
                    "error",
                    f"the same image is in {' and '.join(sorted(splits, key=list(facts).index))}: "
                    f"{listing(listed, sep=' = ')}",
                    listed,
                )
            )
        elif len(same_content) > 1 and not any(source_stem(Path(n).stem) for _, n in same_content):
            problems.append(
                Problem(
                    "duplicate_image",
                    "warning",
                    f"identical images within {same_content[0][0]}: {listing(listed, sep=' = ')}",
                    listed,
                )
            )
    originals = {split: {f.stem for f in files if source_stem(f.stem) is None} for split, files in facts.items()}
    for split, files in facts.items():
        for f in files:
            source = source_stem(f.stem)
            if source is None:
                continue
            homes = [s for s in originals if source in originals[s]]
            if split == "test":
                problems.append(
                    Problem(
                        "leak_augmented_test",
                        "error",
                        f"test/images/{f.name} is an augmented copy: the test split must hold real images only",
                        [f.name],
                    )
                )
            elif homes and split not in homes:
                problems.append(
                    Problem(
                        "leak_augmented_copy",
                        "error",
                        f"{split}/images/{f.name} is an augmented copy of "
                        f"{homes[0]}/{source}: its source sits in another split",
                        [f"{split}/images/{f.name}", f"{homes[0]}/images/{source}"],
                    )
                )
            elif not homes:
                problems.append(
                    Problem(
                        "augmented_orphan",
                        "warning",
                        f"{split}/images/{f.name}: augmented copy of {source!r}, which is in no split",
                        [f.name],
                    )
                )
    return problems


def _thumbnail(rgb: np.ndarray, side: int = 224, nearest: bool = False) -> np.ndarray:
    scale = side / max(rgb.shape[:2])
    if scale >= 1:
        return rgb
    return resize(rgb, max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)), nearest=nearest)


def write_stats_figures(exp: Experiment, report: StatsReport, output: Path, seed: int = 0) -> list[Path]:
    """split_counts.png (like the legacy scripts' NBM_Statistics.png) and montages of train images and masks."""
    from flexseg.data.pairing import split_pairs
    from flexseg.plots import plot_montage, plot_split_counts

    written = [output / "split_counts.png"]
    plot_split_counts(
        {s: (v.pairs - v.augmented, v.augmented) for s, v in report.splits.items()},
        f"{exp.name}: image/mask pairs per split",
        written[0],
    )
    from flexseg.data.folds import fold_experiment, fold_numbers

    folds = fold_numbers(exp.data.root) if report.splits and "train" not in report.splits else []
    train_of = fold_experiment(exp, folds[0]) if folds else exp  # a cross-validation: the first fold's
    try:
        pairs = [p for p in split_pairs(train_of, "train") if source_stem(p[0].stem) is None]
    except DataError:
        pairs = []
    if pairs:
        rng = np.random.default_rng(seed)
        chosen = sorted(rng.choice(len(pairs), size=min(SAMPLE_IMAGES, len(pairs)), replace=False))
        class_map = ClassMap.from_experiment(exp)
        sample = [pairs[i] for i in chosen]
        titles = [image.name for image, _ in sample]
        plot_montage(
            [_thumbnail(read_image(image, channels=3)) for image, _ in sample],
            titles,
            f"{exp.name}: train images (sample)",
            output / "train_images_sample.png",
        )
        plot_montage(
            [
                _thumbnail(class_map.to_rgb(class_map.to_indices(read_mask(mask)).indices), nearest=True)
                for _, mask in sample
            ],
            titles,
            f"{exp.name}: train masks (sample) — " + ", ".join(class_map.names),
            output / "train_masks_sample.png",
        )
        written += [output / "train_images_sample.png", output / "train_masks_sample.png"]
    report.figures = [str(p) for p in written]
    return written


def report_dataset(exp: Experiment, output: Path | None = None) -> tuple[StatsReport, Path]:
    """``flexseg stats``: collect, then write stats.json and the figures into ``output``
    (default ``<run_dir>/stats``). Returns the report and the folder."""
    import json

    from flexseg.fsutil import atomic_write_text
    from flexseg.runs import open_output, refuse_inputs

    report = collect_stats(exp)
    folder = (output or exp.resolved_run_dir / "stats").resolve()
    inputs = [(f"the {split} split", exp.data.split_dir(split)) for split in ("train", "valid", "test")]
    inputs += [(f"the dataset's {name}", folder) for name, folder in dataset_parts(exp)]
    refuse_inputs(folder, inputs, "--output")
    with open_output(folder, "stats"):
        write_stats_figures(exp, report, folder, seed=exp.split.seed)
        atomic_write_text(folder / "stats.json", json.dumps(report.to_json(), indent=1))
    return report, folder
