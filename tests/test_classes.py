import numpy as np

from flexseg.data.classes import ClassMap
from flexseg.data.io import read_mask
from tests.conftest import NBM_MINI

BW = ClassMap(["background", "lesion"], [(0, 0, 0), (255, 255, 255)], tolerance=60)


def test_jpeg_noise_maps_to_the_nearest_colour():
    mask = np.array([[0, 12, 40], [250, 200, 255]], np.uint8)
    conv = BW.to_indices(mask)
    assert conv.indices.tolist() == [[0, 0, 0], [1, 1, 1]]
    assert conv.far_pixels == 0


def test_pixels_far_from_every_colour_are_counted():
    mask = np.zeros((4, 4, 3), np.uint8)
    mask[0, 0] = (128, 128, 128)
    mask[1, 1] = (255, 0, 0)  # red is 255 from both in one channel
    assert BW.to_indices(mask).far_pixels == 2


def test_multiclass_colours_and_round_trip():
    cm = ClassMap(["bg", "bone", "lesion"], [(0, 0, 0), (128, 40, 40), (255, 0, 0)])
    idx = np.array([[0, 1], [2, 1]], np.uint8)
    rgb = cm.to_rgb(idx)
    assert rgb[1, 0].tolist() == [255, 0, 0]
    assert (cm.to_indices(rgb).indices == idx).all()
    assert cm.palette()[:9] == [0, 0, 0, 128, 40, 40, 255, 0, 0] and len(cm.palette()) == 768
    assert cm.foreground == [1, 2]


def test_real_nbm_masks_map_to_two_classes_with_few_far_pixels():
    files = sorted((NBM_MINI / "masks").iterdir())
    assert len(files) == 24
    far = total = 0
    fractions = []
    for path in files:
        conv = BW.to_indices(read_mask(path))
        assert set(np.unique(conv.indices)) <= {0, 1}
        far += conv.far_pixels
        total += conv.indices.size
        fractions.append((conv.indices == 1).mean())
    assert far / total < 1e-4  # JPEG noise stays near the two colours
    assert 0.005 < np.mean(fractions) < 0.03  # README: lesions ≈1.4% of pixels


def _nearest_by_definition(cm: ClassMap, mask: np.ndarray) -> tuple[np.ndarray, int]:
    """The rule written out: per pixel, the class colour at the least squared distance (the first
    on a tie), and the pixels with a channel more than the tolerance away from it."""
    rgb = (np.repeat(mask[..., None], 3, axis=-1) if mask.ndim == 2 else mask[..., :3]).astype(np.int64)
    d2 = ((rgb[..., None, :] - cm.colors[None, None].astype(np.int64)) ** 2).sum(axis=-1)
    indices = d2.argmin(axis=-1).astype(np.uint8)
    far = int((np.abs(rgb - cm.colors[indices]).max(axis=-1) > cm.tolerance).sum())
    return indices, far


def test_the_lookup_tables_give_the_nearest_colour_rule_on_every_kind_of_mask():
    """to_indices maps grey masks by a table of grey values and colour masks by per-channel
    tables: both must equal the rule itself, on grey, grey-as-RGB, colour, RGBA and 16-bit masks,
    with tied class colours, and on the real JPEG-damaged nbm-mini masks."""
    rng = np.random.default_rng(3)
    maps = [
        BW,
        ClassMap(["bg", "bone", "lesion"], [(0, 0, 0), (255, 255, 255), (255, 0, 0)], tolerance=30),
        ClassMap(["a", "b", "c", "d"], [(10, 10, 10), (10, 10, 10), (128, 0, 255), (0, 200, 0)]),
    ]
    grey = rng.integers(0, 256, (23, 29), dtype=np.uint8)
    grey16 = rng.integers(0, 65536, (23, 29), dtype=np.uint16)
    masks = [
        grey,
        np.stack([grey] * 3, axis=-1),
        rng.integers(0, 256, (23, 29, 3), dtype=np.uint8),
        rng.integers(0, 256, (23, 29, 4), dtype=np.uint8),
        grey16,
        np.stack([grey16] * 3, axis=-1),
        rng.integers(0, 65536, (23, 29, 3), dtype=np.uint16),
        np.zeros((3, 3, 3), np.uint8),
    ]
    masks += [read_mask(p) for p in sorted((NBM_MINI / "masks").iterdir())[:4]]
    for cm in maps:
        for mask in masks:
            indices, far = _nearest_by_definition(cm, mask)
            conv = cm.to_indices(mask)
            assert (conv.indices == indices).all() and conv.far_pixels == far, (mask.shape, mask.dtype)
