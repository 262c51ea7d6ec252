import cv2
import numpy as np
import pytest
from PIL import Image

from flexseg.data.io import (
    list_images,
    read_image,
    read_mask,
    resize,
    write_palette_mask,
)
from flexseg.errors import DataError


def test_grey_rgba_and_16_bit_images_become_rgb_uint8(tmp_path):
    grey = (np.arange(64 * 64) % 256).astype(np.uint8).reshape(64, 64)
    cv2.imwrite(str(tmp_path / "g.png"), grey)
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 2] = 200  # BGR(A): red channel
    cv2.imwrite(str(tmp_path / "a.png"), rgba)
    cv2.imwrite(str(tmp_path / "w.tif"), np.full((8, 8), 65535, np.uint16))
    g = read_image(tmp_path / "g.png")
    assert g.shape == (64, 64, 3) and (g[..., 0] == grey).all()
    a = read_image(tmp_path / "a.png")
    assert a.shape == (8, 8, 3) and a[0, 0].tolist() == [200, 0, 0]
    w = read_image(tmp_path / "w.tif")
    assert w.dtype == np.uint8 and w.max() == 255
    assert read_image(tmp_path / "a.png", channels=1).shape == (8, 8, 1)


def test_names_with_spaces_parentheses_and_non_ascii(tmp_path):
    path = tmp_path / "1 (107) – Knöchel.png"
    cv2.imwrite(str(tmp_path / "tmp.png"), np.full((4, 4, 3), 7, np.uint8))
    (tmp_path / "tmp.png").rename(path)
    assert read_image(path)[0, 0].tolist() == [7, 7, 7]
    assert list_images(tmp_path) == [path]


def test_corrupt_image_is_a_data_error_naming_the_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(DataError, match="broken.png"):
        read_image(bad)
    with pytest.raises(DataError, match="broken.png"):
        read_mask(bad)


def test_palette_mask_round_trip_and_one_bit_masks(tmp_path):
    idx = np.array([[0, 1], [2, 0]], np.uint8)
    palette = [0, 0, 0, 128, 40, 40, 255, 0, 0] + [0] * (768 - 9)
    write_palette_mask(tmp_path / "m.png", idx, palette)
    with Image.open(tmp_path / "m.png") as im:
        assert im.mode == "P" and (np.asarray(im) == idx).all()
    assert read_mask(tmp_path / "m.png")[0, 1].tolist() == [128, 40, 40]
    Image.fromarray(np.array([[0, 1]], bool)).convert("1").save(tmp_path / "bit.png")
    assert read_mask(tmp_path / "bit.png")[0].tolist() == [[0, 0, 0], [255, 255, 255]]


def test_resize_keeps_labels_with_nearest():
    idx = np.zeros((8, 8), np.uint8)
    idx[2:6, 2:6] = 2
    out = resize(idx, 16, 16, nearest=True)
    assert out.shape == (16, 16) and set(np.unique(out)) == {0, 2}


def test_atomic_writes_leave_no_temporary_file_and_a_normal_mode(tmp_path):
    import os

    from flexseg.fsutil import atomic_path, atomic_write_text

    atomic_write_text(tmp_path / "a.txt", "hello")
    assert (tmp_path / "a.txt").read_text() == "hello"
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~umask
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "b.txt") as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]  # no half file, no temporary
