import pytest

from flexseg.data.pairing import pair_by_stem
from flexseg.errors import DataError
from tests.conftest import NBM_MINI


def test_pairs_by_stem_sorted(tmp_path):
    for folder in ("images", "masks"):
        (tmp_path / folder).mkdir()
        for stem in ("b", "a", "c (2)"):
            (tmp_path / folder / f"{stem}.png").write_bytes(b"")
    (tmp_path / "images" / "a.png").rename(tmp_path / "images" / "a.jpg")
    pairs = pair_by_stem(tmp_path / "images", tmp_path / "masks")
    assert [(i.name, m.name) for i, m in pairs] == [("a.jpg", "a.png"), ("b.png", "b.png"), ("c (2).png", "c (2).png")]


def test_unpaired_files_are_listed(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    (tmp_path / "images" / "x.png").write_bytes(b"")
    (tmp_path / "masks" / "y.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"1 image\(s\) without a mask .*'x'.*1 mask\(s\) without an image .*'y'"):
        pair_by_stem(tmp_path / "images", tmp_path / "masks")


def test_empty_image_folder(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with pytest.raises(DataError, match="no images"):
        pair_by_stem(tmp_path / "images", tmp_path / "masks")


def test_real_nbm_names_with_spaces_and_parentheses_pair_one_to_one():
    pairs = pair_by_stem(NBM_MINI / "images", NBM_MINI / "masks")
    assert len(pairs) == 24
    assert all(i.name == m.name for i, m in pairs)
    assert ("1 (107).png", "1 (107).png") in [(i.name, m.name) for i, m in pairs]
