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
