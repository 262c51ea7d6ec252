import pytest

from flexseg.data.pairing import natural_key, pair_by_stem, pair_folders
from flexseg.errors import DataError
from tests.conftest import KNEE_RAW, NBM_MINI

KNEE_STEM = "1_3_76_2_1_1_4_1_716728356_716728387"
# from the dataset's README: the suffix _N is InstanceNumber-1, the mask number is InstanceNumber
KNOWN_KNEE_PAIRS = [
    (f"{KNEE_STEM}_0.dcm", "Mask_001.png"),
    (f"{KNEE_STEM}_12.dcm", "Mask_013.png"),
    (f"{KNEE_STEM}_108.dcm", "Mask_109.png"),
    (f"{KNEE_STEM}_276.dcm", "Mask_277.png"),
]


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
    with pytest.raises(DataError, match=r"1 image\(s\) without a mask: 'x.png'.*1 mask\(s\) without an image: 'y.png'"):
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


@pytest.mark.parametrize("rule", ["instance_number", "natural"])
def test_real_kneebones_every_slice_gets_its_own_mask(rule):
    pairing = pair_folders(KNEE_RAW / "Data", KNEE_RAW / "GT-Masks", rule)
    assert pairing.complete and len(pairing.pairs) == 24
    names = [(i.name, m.name) for i, m in pairing.pairs]
    for pair in KNOWN_KNEE_PAIRS:
        assert pair in names
    # every mask number is the slice suffix + 1
    assert all(int(m.stem.split("_")[1]) == int(i.stem.rsplit("_", 1)[1]) + 1 for i, m in pairing.pairs)


def test_plain_string_sort_would_pair_kneebones_wrongly():
    """The trap the seed fell into; natural_key avoids it."""
    images = sorted(p.name for p in (KNEE_RAW / "Data").iterdir())
    masks = sorted(p.name for p in (KNEE_RAW / "GT-Masks").iterdir())
    wrong = list(zip(images, masks))
    assert sum(pair in wrong for pair in KNOWN_KNEE_PAIRS) < len(KNOWN_KNEE_PAIRS)
    assert sorted(["x_108", "x_12", "x_2"], key=natural_key) == ["x_2", "x_12", "x_108"]


def _touch(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        (folder / n).write_bytes(b"")


def test_regex_pairing_compares_numbers_as_numbers(tmp_path):
    _touch(tmp_path / "images", ["scan-7-a.png", "scan-12-a.png", "scan-30-a.png"])
    _touch(tmp_path / "masks", ["seg_007.png", "seg_012.png", "seg_099.png"])
    pairing = pair_folders(tmp_path / "images", tmp_path / "masks", "regex", r"scan-(\d+)", r"seg_(\d+)")
    assert [(i.name, m.name) for i, m in pairing.pairs] == [
        ("scan-7-a.png", "seg_007.png"),
        ("scan-12-a.png", "seg_012.png"),
    ]
    assert [p.name for p in pairing.lonely_images] == ["scan-30-a.png"]
    assert [p.name for p in pairing.lonely_masks] == ["seg_099.png"]


def test_natural_pairing_with_unequal_counts_lists_the_rest(tmp_path):
    _touch(tmp_path / "images", ["a1.png", "a2.png", "a10.png"])
    _touch(tmp_path / "masks", ["m1.png", "m2.png"])
    pairing = pair_folders(tmp_path / "images", tmp_path / "masks", "natural")
    assert not pairing.complete and [p.name for p in pairing.lonely_images] == ["a10.png"]


def test_two_files_with_one_key_are_an_error(tmp_path):
    _touch(tmp_path / "images", ["a_1.png", "b_01.png"])
    _touch(tmp_path / "masks", ["m_1.png"])
    with pytest.raises(DataError, match="same pairing key 1"):
        pair_folders(tmp_path / "images", tmp_path / "masks", "regex", r"_(\d+)")
