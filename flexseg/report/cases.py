"""The pictures of an evaluation's cases: every case's thumbnail and the worst cases' panels.

``CaseGallery`` is fed each scored case during ``flexseg evaluate`` (with the scores'
accumulators) and keeps, in bounded memory, a small error-overlay thumbnail of every case and
the truth and prediction of the ``worst`` lowest-scoring ones; ``write`` puts them under
``report/`` with ``report/cases.json`` (``CaseIndex``), which ``flexseg report`` reads.

A case's score is the mean foreground Dice over the classes present in its truth or prediction
(a case where neither holds any foreground has no score and is never among the worst).

Colours (Okabe–Ito, told apart with every common colour-vision deficiency): false negatives
(truth pixels the model missed) blue, false positives (predicted where the truth has none of
that class) orange, a foreground class predicted as another purple; classes in the truth and
prediction tiles take the palette in order.
"""

from __future__ import annotations

import heapq
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from pydantic import Field

from flexseg.data.io import read_image, resize
from flexseg.fsutil import atomic_write_bytes, atomic_write_text
from flexseg.names import unique_filenames
from flexseg.schema import Record, to_json

CASES_FILE = "cases.json"
REPORT_ASSETS = "report"  # beside report.html: the pictures and cases.json
FALSE_NEGATIVE = (0, 114, 178)  # blue
FALSE_POSITIVE = (230, 159, 0)  # orange
WRONG_CLASS = (204, 121, 167)  # reddish purple
# bluish green, vermillion, sky blue, yellow: distinct from each other and from the grey image (yellow,
# nearly white, comes last: on bright bone it vanished)
CLASS_PALETTE = [(0, 158, 115), (213, 94, 0), (86, 180, 233), (240, 228, 66), (0, 114, 178), (204, 121, 167)]
PANEL_TILE = 320  # pixels of the longer side of each of a panel's four tiles
THUMBNAIL = 96


def class_colour(index: int) -> tuple[int, int, int]:
    """The report's colour of foreground class ``index`` (1-based; background has none)."""
    return CLASS_PALETTE[(index - 1) % len(CLASS_PALETTE)]


class Case(Record):
    """One scored case in ``cases.json``."""

    name: str
    score: float | None  # mean foreground Dice over the classes present; None: no foreground anywhere
    thumbnail: str  # path relative to report.html
    panel: str | None = None  # the four-tile picture, for the worst cases only
    false_negative_pixels: int = Field(ge=0)
    false_positive_pixels: int = Field(ge=0)


class CaseIndex(Record):
    """``report/cases.json``: the cases in the order they were scored, and which were the worst."""

    cases: list[Case]
    worst: list[str]  # names, worst first
    class_names: list[str]


def case_score(truth: np.ndarray, pred: np.ndarray, classes: int) -> float | None:
    """Mean Dice over the foreground classes present in ``truth`` or ``pred``; None when none is."""
    scores = []
    for c in range(1, classes):
        t, p = truth == c, pred == c
        total = int(t.sum()) + int(p.sum())
        if total:
            scores.append(2 * int((t & p).sum()) / total)
    return float(np.mean(scores)) if scores else None


def _grey_rgb(image: np.ndarray) -> np.ndarray:
    """A uint8 (H, W, 3) grey version of an image (RGB or one channel)."""
    grey = image[..., :3].mean(-1) if image.shape[-1] >= 3 else image[..., 0]
    return np.repeat(grey.astype(np.uint8)[..., None], 3, axis=-1)


def _blend(base: np.ndarray, where: np.ndarray, colour: tuple[int, int, int], alpha: float = 0.6) -> None:
    base[where] = (1 - alpha) * base[where] + alpha * np.asarray(colour, np.float32)


def class_overlay(image: np.ndarray, labels: np.ndarray, classes: int) -> np.ndarray:
    """The image in grey with each foreground class in its report colour."""
    out = _grey_rgb(image).astype(np.float32)
    for c in range(1, classes):
        _blend(out, labels == c, class_colour(c))
    return out.astype(np.uint8)


def error_overlay(image: np.ndarray, truth: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, int, int]:
    """The image in grey with false negatives blue, false positives orange and a foreground class
    taken for another purple; and the counts of false-negative and false-positive pixels."""
    out = _grey_rgb(image).astype(np.float32)
    wrong_class = (truth > 0) & (pred > 0) & (truth != pred)
    missed = (truth > 0) & (pred == 0)
    extra = (truth == 0) & (pred > 0)
    _blend(out, missed, FALSE_NEGATIVE, 0.75)
    _blend(out, extra, FALSE_POSITIVE, 0.75)
    _blend(out, wrong_class, WRONG_CLASS, 0.75)
    return out.astype(np.uint8), int((missed | wrong_class).sum()), int((extra | wrong_class).sum())


def _fit(tile: np.ndarray, longest: int) -> np.ndarray:
    """The tile scaled so its longer side is ``longest``: pixels kept sharp when enlarged, averaged
    when shrunk (a one-pixel error line stays visible as a tint)."""
    height, width = tile.shape[:2]
    scale = longest / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resample = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.BOX
    return np.asarray(Image.fromarray(tile).resize(size, resample))


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def panel(image: np.ndarray, truth: np.ndarray, pred: np.ndarray, classes: int) -> np.ndarray:
    """Four tiles side by side: the image, the truth, the prediction, the errors."""
    tiles = [
        image[..., :3] if image.shape[-1] >= 3 else _grey_rgb(image),
        class_overlay(image, truth, classes),
        class_overlay(image, pred, classes),
        error_overlay(image, truth, pred)[0],
    ]
    tiles = [_fit(t, PANEL_TILE) for t in tiles]
    if tiles[0].shape[1] < PANEL_TILE:  # a tall image: every tile as wide as the captions above them
        pad = np.full((tiles[0].shape[0], PANEL_TILE - tiles[0].shape[1], 3), 255, np.uint8)
        tiles = [np.concatenate([t, pad], axis=1) for t in tiles]
    gap = np.full((tiles[0].shape[0], 6, 3), 255, np.uint8)
    return np.concatenate([x for t in tiles for x in (t, gap)][:-1], axis=1)


def _image_at(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """The image file as uint8 (H, W, C) at the mask's size (the two differ only for a 2.5D or
    resampled input; scores are at the mask's size)."""
    return resize(read_image(path), shape[1], shape[0])


@dataclass
class _Kept:
    name: str
    image_path: Path
    truth: np.ndarray
    pred: np.ndarray


class CaseGallery:
    """Collects the cases of one evaluation (see the module's text); ``images`` maps each case
    name to its image file, read again only for the pictures."""

    def __init__(self, images: dict[str, Path], class_names: list[str], worst: int = 8) -> None:
        self.images, self.class_names, self.keep = images, class_names, worst
        self.cases: list[dict] = []
        self.thumbnails: dict[str, bytes] = {}
        self._worst: list[tuple[float, int, _Kept]] = []  # a max-heap on the score (negated): the N lowest

    def add(self, name: str, truth: np.ndarray, pred: np.ndarray, probs: object = None, spacing: object = None) -> None:
        """One scored case (the accumulators' signature; ``probs`` and ``spacing`` are not used)."""
        classes = len(self.class_names)
        score = case_score(truth, pred, classes)
        image = _image_at(self.images[name], truth.shape)
        overlay, missed, extra = error_overlay(image, truth, pred)
        self.thumbnails[name] = _png(_fit(overlay, THUMBNAIL))
        self.cases.append({"name": name, "score": score, "fn": missed, "fp": extra})
        if score is None:
            return
        item = (-score, len(self.cases), _Kept(name, self.images[name], truth.copy(), pred.copy()))
        if len(self._worst) < self.keep:
            heapq.heappush(self._worst, item)
        elif item[:2] > self._worst[0][:2]:
            heapq.heapreplace(self._worst, item)

    def write(self, folder: Path) -> CaseIndex:
        """The pictures and ``cases.json`` into ``folder`` (the ``report`` folder beside report.html)."""
        names = [c["name"] for c in self.cases]
        files = dict(zip(names, unique_filenames([(Path(n).stem, ".png") for n in names])[0]))
        worst = [kept for _, _, kept in sorted(self._worst, key=lambda item: (-item[0], item[1]))]
        panels = {}
        for kept in worst:
            image = _image_at(kept.image_path, kept.truth.shape)
            panels[kept.name] = f"panels/{files[kept.name]}"
            atomic_write_bytes(
                folder / panels[kept.name], _png(panel(image, kept.truth, kept.pred, len(self.class_names)))
            )
        cases = []
        for case in self.cases:
            thumbnail = f"thumbnails/{files[case['name']]}"
            atomic_write_bytes(folder / thumbnail, self.thumbnails[case["name"]])
            cases.append(
                Case(
                    name=case["name"],
                    score=case["score"],
                    thumbnail=f"{REPORT_ASSETS}/{thumbnail}",
                    panel=f"{REPORT_ASSETS}/{panels[case['name']]}" if case["name"] in panels else None,
                    false_negative_pixels=case["fn"],
                    false_positive_pixels=case["fp"],
                )
            )
        index = CaseIndex(cases=cases, worst=[k.name for k in worst], class_names=self.class_names)
        atomic_write_text(folder / CASES_FILE, to_json(index))
        return index
