from pathlib import Path

import numpy as np
import pytest

from flexseg.commands.augment import augment
from flexseg.config import load_experiment
from flexseg.data.augmented import source_stem
from flexseg.data.io import read_image, read_mask
from flexseg.errors import ConfigError, DataError
from tests.conftest import colours_of, knee_experiment, tiny_experiment, write_yaml

KNEE_COLOURS = {(0, 0, 0), (128, 40, 40)}


def load_with_transforms(tmp_path, transforms):
    return load_experiment(write_yaml(tmp_path / "e.yaml", tiny_experiment(augment={"transforms": transforms})))


def test_unknown_transform_is_named_with_the_valid_ones(tmp_path):
    with pytest.raises(
        ConfigError,
        match=r"augment.transforms\[1\]: unknown albumentations transform 'HorizonalFlip'; "
        r"did you mean HorizontalFlip.*valid: .*ElasticTransform",
    ):
        load_with_transforms(tmp_path, [{"VerticalFlip": {"p": 0.5}}, {"HorizonalFlip": {"p": 0.5}}])


def test_unknown_argument_is_named_with_the_valid_ones(tmp_path):
    with pytest.raises(ConfigError, match=r"ElasticTransform has no argument 'sigmma'; did you mean sigma\?"):
        load_with_transforms(tmp_path, [{"ElasticTransform": {"alpha": 30, "sigmma": 5}}])


def test_bad_argument_value_and_nested_oneof(tmp_path):
    with pytest.raises(
        ConfigError, match=r"transforms\[0\].OneOf.transforms\[0\]: RandomGamma\(gamma_limit='x'\) is not valid"
    ):
        load_with_transforms(tmp_path, [{"OneOf": {"transforms": [{"RandomGamma": {"gamma_limit": "x"}}]}}])
    with pytest.raises(ConfigError, match="mask_interpolation must stay 0"):
        load_with_transforms(tmp_path, [{"Rotate": {"mask_interpolation": 1}}])


def test_the_seed_set_is_expressible():
    """experiments/kneebones3dify.yaml holds flips, rot90, elastic, grid, barrel, pincushion, shrink,
    brightness, gamma."""
    exp = knee_experiment(Path("/nonexistent"), Path("/tmp"))
    text = repr(exp.augment.transforms)
    for name in (
        "HorizontalFlip",
        "VerticalFlip",
        "RandomRotate90",
        "ElasticTransform",
        "GridDistortion",
        "OpticalDistortion",
        "Affine",
        "RandomBrightnessContrast",
        "RandomGamma",
    ):
        assert name in text


def test_real_kneebones_augmentation(knee_split, tmp_path):
    exp = knee_experiment(knee_split, tmp_path, "augment.copies=2")
    result = augment(exp, force=False)
    assert (result.sources, result.written) == (16, 32)
    images = sorted((knee_split / "train" / "images").glob("*__aug*.png"))
    masks = sorted((knee_split / "train" / "masks").glob("*__aug*.png"))
    assert len(images) == len(masks) == 32
    assert images[0].name == "1_3_76_2_1_1_4_1_716728356_716728387_0__aug01.png"
    assert source_stem(images[0].stem) == "1_3_76_2_1_1_4_1_716728356_716728387_0"
    changed = 0
    for image, mask in zip(images, masks):
        rgb = read_mask(mask)
        assert colours_of(rgb) <= KNEE_COLOURS  # nearest: class colours only
        assert (rgb == (128, 40, 40)).all(-1).any()
        source = knee_split / "train" / "images" / (source_stem(image.stem) + ".png")
        changed += not np.array_equal(read_image(image, None), read_image(source, None))
    assert changed >= 28  # almost every copy differs from its source
    # the other splits are untouched
    assert not list((knee_split / "valid" / "images").glob("*__aug*")) and not list(
        (knee_split / "test" / "images").glob("*__aug*")
    )

    first = {p.name: p.read_bytes() for p in images + masks}
    with pytest.raises(DataError, match="already holds 64 augmented files.*--force"):
        augment(exp)
    augment(exp, force=True)
    assert {p.name: p.read_bytes() for p in images + masks} == first  # deterministic for a seed
    augment(knee_experiment(knee_split, tmp_path, "augment.copies=1", "augment.seed=1"), force=True)
    assert len(list((knee_split / "train" / "images").glob("*__aug*"))) == 16
    assert (knee_split / "train" / "images" / images[0].name).read_bytes() != first[images[0].name]


def test_augment_refuses_the_test_split(knee_split, tmp_path):
    with pytest.raises(ConfigError, match="refuses the test split"):
        augment(knee_experiment(knee_split, tmp_path), "test")
    same = knee_experiment(knee_split, tmp_path, f"data.valid={knee_split / 'test'}")
    with pytest.raises(ConfigError, match="also the test split's folder"):
        augment(same, "valid")


def test_each_transform_draws_its_own_random_numbers():
    """albumentations' own set_random_seed gives all children one seed, so two p=0.5 flips
    would always fire together; flexseg seeds each from its own stream."""
    from flexseg.commands.augment import copy_seed
    from flexseg.transforms import build_pipeline, seed_pipeline

    pipeline = build_pipeline([{"HorizontalFlip": {"p": 0.5}}, {"VerticalFlip": {"p": 0.5}}])
    pipeline.save_applied_params = True
    image = np.zeros((8, 8, 1), np.uint8)
    both = one = 0
    for copy in range(400):
        seed_pipeline(pipeline, copy_seed(137, "x", copy))
        applied = {t[0] for t in pipeline(image=image, mask=image[..., 0])["applied_transforms"]}
        both += applied == {"HorizontalFlip", "VerticalFlip"}
        one += len(applied) == 1
    assert 0.18 < both / 400 < 0.32 and 0.4 < one / 400 < 0.6  # independent: 1/4 and 1/2
