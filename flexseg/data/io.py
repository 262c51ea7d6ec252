"""Reading and writing images and masks: the only module that touches OpenCV and PIL."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from flexseg.errors import DataError
from flexseg.fsutil import atomic_write_bytes

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name."""
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _decode(path: Path, flags: int) -> np.ndarray:
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as e:
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


def read_image(path: Path, channels: int = 3) -> np.ndarray:
    """An image as uint8 RGB (H, W, 3) or grey (H, W, 1), whatever its file's bit depth and channels."""
    img = to_uint8(_decode(path, cv2.IMREAD_UNCHANGED))
    if img.ndim == 2:
        img = img[..., None]
    if img.shape[-1] == 4:
        img = img[..., :3]
    if img.shape[-1] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if channels == 3 and img.shape[-1] == 1:
        img = np.repeat(img, 3, axis=-1)
    elif channels == 1 and img.shape[-1] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[..., None]
    return img


def read_mask(path: Path) -> np.ndarray:
    """A mask as uint8 RGB (H, W, 3); palette and 1-bit PNGs come out in their colours."""
    if path.suffix.lower() == ".png":
        # PIL honours the palette of 'P' PNGs and gives 1-bit PNGs as 0/255
        try:
            with Image.open(path) as im:
                return np.asarray(im.convert("RGB"))
        except (OSError, SyntaxError, ValueError) as e:
            raise DataError(f"{path}: not a readable PNG mask ({e}); fix or remove it") from None
    mask = to_uint8(_decode(path, cv2.IMREAD_UNCHANGED))
    if mask.ndim == 2:
        return np.repeat(mask[..., None], 3, axis=-1)
    return cv2.cvtColor(mask[..., :3], cv2.COLOR_BGR2RGB)


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
