"""Reading and writing images and masks: the only module that touches OpenCV, PIL and pydicom."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from flexseg.config import PERCENTILES
from flexseg.errors import DataError
from flexseg.fsutil import atomic_write_bytes
from flexseg.settings import MAX_PIXELS_ENV, max_pixels

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
RAW_IMAGE_SUFFIXES = IMAGE_SUFFIXES + (".dcm",)  # what `flexseg split` reads
DICOM_PERCENTILES = PERCENTILES  # the 8-bit range of a DICOM slice without a window in its header


def open_image(path: Path) -> Image.Image:
    """``Image.open`` under flexseg's own pixel limit (``check_pixels`` follows on its size), leaving
    Pillow's decompression-bomb guard as the process set it: its warning is not shown (flexseg's
    check decides), and an image over the guard but within $FLEXSEG_MAX_PIXELS is opened with the
    guard at that limit for this one call."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return Image.open(path)
        except Image.DecompressionBombError:
            pass
        guard, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, max_pixels()
        try:
            return Image.open(path)
        except Image.DecompressionBombError:
            raise DataError(
                f"{path}: over the limit of {max_pixels() / 1e6:.0f} M pixels; not decoded. Crop or downsample "
                f"it, or raise ${MAX_PIXELS_ENV} if the machine has the memory"
            ) from None
        finally:
            Image.MAX_IMAGE_PIXELS = guard


def check_pixels(path: Path, width: int, height: int) -> None:
    limit = max_pixels()
    if width * height > limit:
        raise DataError(
            f"{path}: {width}×{height} pixels ({width * height / 1e6:.0f} M) is over the limit of "
            f"{limit / 1e6:.0f} M pixels; not decoded. Crop or downsample it, or raise "
            f"${MAX_PIXELS_ENV} if the machine has the memory"
        )


def list_images(
    folder: Path, suffixes: tuple[str, ...] = IMAGE_SUFFIXES, keep_broken_links: bool = False
) -> list[Path]:
    """Image files directly in ``folder``, sorted by name (hidden files left out). A link to a missing
    file is refused, or with ``keep_broken_links`` listed like any image (reading it then fails
    naming it, and a command that goes on past unreadable inputs treats it as one)."""
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found")
    found = []
    for p in folder.iterdir():
        if p.suffix.lower() not in suffixes or p.name.startswith("."):
            continue
        if p.is_symlink() and not p.exists():
            if keep_broken_links:
                found.append(p)
                continue
            raise DataError(f"{broken_link(p)}; fix or remove the link")
        if p.is_file():
            found.append(p)
    return sorted(found)


def broken_link(path: Path) -> str:
    return f"{path}: a link to a missing file ({os.readlink(path)})"


def is_dicom(path: Path) -> bool:
    return path.suffix.lower() == ".dcm"


def _dicom(path: Path, pixels: bool = True):
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(str(path), stop_before_pixels=not pixels)
    except (InvalidDicomError, OSError, ValueError, EOFError) as e:
        raise DataError(f"{path}: not a readable DICOM file ({str(e)[:160]}); fix or remove it") from None
    except Exception as e:  # pydicom raises many more types for damaged headers
        raise DataError(
            f"{path}: not a readable DICOM file ({type(e).__name__}: {str(e)[:160]}); fix or remove it"
        ) from None


def dicom_instance_number(path: Path) -> int:
    number = _dicom(path, pixels=False).get("InstanceNumber")
    if number is None or str(number).strip() == "":
        raise DataError(
            f"{path}: the DICOM header has no InstanceNumber; pair by split.pairing: natural or regex instead"
        )
    return int(number)


def dicom_pixel_spacing(path: Path) -> tuple[float, float] | None:
    """(row, column) pixel size in mm from the header's PixelSpacing, or None when it has none."""
    spacing = _dicom(path, pixels=False).get("PixelSpacing")
    try:
        row, col = (float(v) for v in spacing)
    except (TypeError, ValueError):
        return None
    return (row, col) if row > 0 and col > 0 else None


def _first(value: object) -> float:
    """The first of a multi-valued DICOM element (pydicom's MultiValue is a Sequence), or the value."""
    return float(value[0] if isinstance(value, Sequence) and not isinstance(value, str) else value)


def dicom_header(path: Path):  # noqa: ANN201 (a pydicom Dataset, pixels not read)
    return _dicom(path, pixels=False)


def dicom_values(path: Path, ds: object = None) -> tuple[np.ndarray, object]:
    """A DICOM slice's values (H, W) float32 after rescale slope/intercept (HU for CT), and its
    dataset; the size is checked from the header before the pixels are decoded. ``ds``: the
    slice's pydicom Dataset already in memory (``path`` then only names it)."""
    ds = _dicom(path) if ds is None else ds
    if not (ds.get("Rows") and ds.get("Columns")):
        raise DataError(f"{path}: the DICOM header has no image size (Rows, Columns); not an image slice")
    check_pixels(path, int(ds.Columns), int(ds.Rows))
    try:
        values = ds.pixel_array.astype(np.float32)
    except Exception as e:  # pydicom raises many types for missing handlers and bad data
        raise DataError(f"{path}: cannot decode the DICOM pixel data ({e})") from None
    if values.ndim != 2:
        raise DataError(f"{path}: a {values.ndim}-D DICOM ({values.shape}); flexseg reads single 2D slices")
    slope, intercept = _header_number(path, ds, "RescaleSlope", 1.0), _header_number(path, ds, "RescaleIntercept", 0.0)
    values = values * (slope or 1.0) + intercept
    return values, ds


def _header_number(path: Path, ds: object, keyword: str, default: float) -> float:
    """A finite number from a DICOM header element, ``default`` when it is absent; a DataError when
    it is there but not a finite number (a NaN slope would turn every pixel into NaN)."""
    value = ds.get(keyword)
    if value is None or str(value).strip() == "":
        return default
    try:
        number = _first(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not np.isfinite(number):
        raise DataError(
            f"{path}: the DICOM header's {keyword} is {str(value)[:40]!r}, not a finite number; fix the file"
        )
    return number


@dataclass(frozen=True)
class DicomDisplay:
    """How a DICOM slice became 8-bit pixels."""

    how: str  # for split.json and the user: "header window C=… W=…" or "percentiles …"
    window: tuple[float, float] | None = None  # the header's (centre, width), when it was used
    inverted: bool = False  # MONOCHROME1: bright is dense after inversion


def header_window(path: Path, ds: object) -> tuple[float, float] | None:
    """The first VOI window (WindowCenter, WindowWidth) of a DICOM header, or None when it has none."""
    if ds.get("WindowCenter") is None or ds.get("WindowWidth") is None:
        return None
    width = _header_number(path, ds, "WindowWidth", 0.0)
    return (_header_number(path, ds, "WindowCenter", 0.0), width) if width > 1 else None


def dicom_linear(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """DICOM's linear VOI function (PS3.3 C.11.2.1.2) to 0..1: the same numbers for a DICOM slice
    and for a NIfTI volume made from it (the window recorded with a model trained on the slices)."""
    return np.clip((values - (center - 0.5)) / (width - 1) + 0.5, 0.0, 1.0)


def read_dicom(path: Path, ds: object = None) -> tuple[np.ndarray, DicomDisplay]:
    """A DICOM slice as 8-bit grey (H, W), and how it was scaled.

    The header's first VOI window (WindowCenter/WindowWidth, DICOM's linear formula) when it
    has one, else the 0.5–99.5 percentiles of the slice; rescale slope/intercept first,
    MONOCHROME1 inverted so bright is dense. ``ds``: as for ``dicom_values``.
    """
    values, ds = dicom_values(path, ds)
    window = header_window(path, ds)
    if window is not None:
        scaled = dicom_linear(values, *window)
        how = f"header window C={window[0]:g} W={window[1]:g}"
    else:
        lo, hi = np.percentile(values, DICOM_PERCENTILES)
        scaled = np.clip((values - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.zeros_like(values)
        how = f"percentiles {DICOM_PERCENTILES[0]:g}–{DICOM_PERCENTILES[1]:g} ({lo:g}..{hi:g})"
    inverted = str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1"
    if inverted:
        scaled = 1.0 - scaled
    return (scaled * 255.0 + 0.5).astype(np.uint8), DicomDisplay(how, window, inverted)


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file header, without decoding the pixels."""
    if is_dicom(path):
        ds = _dicom(path, pixels=False)
        try:
            return int(ds.Columns), int(ds.Rows)
        except (AttributeError, TypeError, ValueError):
            raise DataError(f"{path}: the DICOM header has no image size (Rows, Columns); not an image slice") from None
    try:
        with open_image(path) as im:
            check_pixels(path, *im.size)
            return im.size
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: not a readable image ({e}); fix or remove it") from None


def _decode(path: Path, flags: int) -> np.ndarray:
    try:
        with open_image(path) as im:
            check_pixels(path, *im.size)
    except (OSError, SyntaxError, ValueError):
        pass  # not an image PIL knows: OpenCV decides below
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        if path.is_symlink() and not path.exists():
            raise DataError(broken_link(path)) from None
        raise DataError(f"{path}: cannot read file ({e.strerror})") from None
    img = cv2.imdecode(data, flags) if data.size else None
    if img is None:
        raise DataError(f"{path}: not a readable image (corrupt, truncated or not an image); fix or remove it")
    return img


def to_uint8(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.uint16:
        return (img.astype(np.float32) / 257.0).round().astype(np.uint8)
    img = img.astype(np.float32)
    lo, hi = float(img.min()), float(img.max())
    return np.zeros(img.shape, np.uint8) if hi <= lo else ((img - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def read_image(path: Path, channels: int | None = 3) -> np.ndarray:
    """An image as uint8 RGB (H, W, 3) or grey (H, W, 1), whatever its file's bit depth and
    channels; ``channels=None`` keeps the file's own (grey or RGB). DICOM is windowed to 8 bits."""
    if is_dicom(path):
        return as_channels(read_dicom(path)[0], channels)
    img = _decode(path, cv2.IMREAD_UNCHANGED)
    if img.ndim == 3 and img.shape[-1] >= 3:  # OpenCV decodes BGR(A)
        img = cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2RGB)
    return as_channels(img, channels)


def as_channels(img: np.ndarray, channels: int | None = 3) -> np.ndarray:
    """An image array (H, W) or (H, W, 1|2|3|4) of any bit depth, RGB order, as the model reads
    it: uint8 (see ``to_uint8``) with ``channels`` channels (None: grey or RGB as it is); an
    alpha channel is dropped. The one conversion of files (``read_image``) and of arrays
    (``Predictor.segment``)."""
    img = to_uint8(np.asarray(img))
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[-1] not in (1, 2, 3, 4):
        raise DataError(f"an image of shape {img.shape}; flexseg takes (H, W) or (H, W, channels) with 1-4 channels")
    if img.shape[-1] == 4:
        img = img[..., :3]
    if img.shape[-1] == 2:  # grey + alpha
        img = img[..., :1]
    if channels == 3 and img.shape[-1] == 1:
        img = np.repeat(img, 3, axis=-1)
    elif channels == 1 and img.shape[-1] == 3:
        img = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)[..., None]
    return img


def read_mask(path: Path) -> np.ndarray:
    """A mask as uint8 RGB (H, W, 3); palette and 1-bit PNGs come out in their colours."""
    if path.suffix.lower() == ".png":
        # PIL honours the palette of 'P' PNGs and gives 1-bit PNGs as 0/255
        try:
            with open_image(path) as im:
                check_pixels(path, *im.size)
                if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
                    rgba = np.asarray(im.convert("RGBA"))
                    _refuse_transparency(path, rgba[..., 3])
                    return np.ascontiguousarray(rgba[..., :3])
                return np.asarray(im.convert("RGB"))
        except (OSError, SyntaxError, ValueError) as e:
            raise DataError(f"{path}: not a readable PNG mask ({e}); fix or remove it") from None
    mask = to_uint8(_decode(path, cv2.IMREAD_UNCHANGED))
    if mask.ndim == 2:
        return np.repeat(mask[..., None], 3, axis=-1)
    if mask.shape[-1] == 4:
        _refuse_transparency(path, mask[..., 3])
    return cv2.cvtColor(mask[..., :3], cv2.COLOR_BGR2RGB)


def _refuse_transparency(path: Path, alpha: np.ndarray) -> None:
    """A mask's colours are its classes; under a transparent pixel the colour is whatever the painting
    program left there (often white: a transparent background read as 100% foreground)."""
    see_through = int((alpha < 255).sum())
    if see_through:
        raise DataError(
            f"{path}: {see_through} mask pixels are (partly) transparent; flexseg reads a mask by "
            "its colours, and a transparent pixel has no class. Flatten the mask onto the background "
            "colour (e.g. ImageMagick: convert IN -background black -flatten OUT) or save it without alpha"
        )


def resize(img: np.ndarray, width: int, height: int, nearest: bool = False) -> np.ndarray:
    if img.shape[1] == width and img.shape[0] == height:
        return img
    interp = cv2.INTER_NEAREST if nearest else (cv2.INTER_AREA if img.shape[1] > width else cv2.INTER_LINEAR)
    out = cv2.resize(img, (width, height), interpolation=interp)
    return out[..., None] if img.ndim == 3 and out.ndim == 2 else out


def write_image(path: Path, rgb: np.ndarray) -> None:
    """Write an RGB or grey uint8 image; the format follows the suffix."""
    arr = rgb if rgb.ndim == 2 or rgb.shape[-1] == 1 else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(path.suffix, arr)
    if not ok:
        raise DataError(f"{path}: cannot encode an image with this suffix")
    atomic_write_bytes(path, buf.tobytes())


def write_palette_mask(path: Path, indices: np.ndarray, palette: list[int]) -> None:
    """A class-index mask as a palette PNG: it shows the class colours and keeps the indices."""
    im = Image.fromarray(indices.astype(np.uint8), mode="P")
    im.putpalette(palette)
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=False)
    atomic_write_bytes(path, buf.getvalue())
