"""augment.online: the experiment's transforms applied in the training input pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from flexseg.config import load_experiment
from flexseg.errors import ConfigError
from tests.conftest import tiny_experiment, write_yaml

TRANSFORMS = [
    {"HorizontalFlip": {"p": 0.5}},
    {"Affine": {"rotate": [-30, 30], "p": 1.0}},
    {"RandomBrightnessContrast": {"p": 0.5}},
]


def online_dataset(tiny_data, tmp_path, seed: int):
    from flexseg.data.classes import ClassMap
    from flexseg.data.pairing import split_pairs
    from flexseg.data.pipeline import OnlineAugmenter, segmentation_dataset

    exp = load_experiment(
        write_yaml(
            tmp_path / "exp.yaml",
            tiny_experiment(data={"root": str(tiny_data)}, augment={"online": True, "transforms": TRANSFORMS}),
        )
    )
    pairs = split_pairs(exp, "train")[:8]
    return segmentation_dataset(
        pairs,
        width=64,
        height=64,
        channels=3,
        class_map=ClassMap.from_experiment(exp),
        batch_size=8,
        seed=seed,
        augment=OnlineAugmenter(exp.augment.transforms),
    )


def epochs(ds, n: int):
    return [next(iter(ds)) for _ in range(n)]  # a new iteration is a new epoch


def test_online_augmentation_is_fresh_every_epoch_and_set_by_the_seed(tiny_data, tmp_path):
    first, second = epochs(online_dataset(tiny_data, tmp_path, seed=5), 2)
    [again] = epochs(online_dataset(tiny_data, tmp_path, seed=5), 1)
    [other] = epochs(online_dataset(tiny_data, tmp_path, seed=6), 1)
    np.testing.assert_array_equal(first[0], again[0])  # same seed: same augmented images
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], second[0])  # a new epoch draws new transforms
    assert not np.array_equal(first[0], other[0])
    for masks in (first[1], second[1]):
        masks = masks.numpy()
        assert set(np.unique(masks)) <= {0.0, 1.0} and np.all(masks.sum(-1) == 1)  # one class per pixel: nearest


def test_online_without_transforms_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="augment.online: true needs augment.transforms"):
        load_experiment(write_yaml(tmp_path / "e.yaml", tiny_experiment(augment={"online": True})))


def test_offline_augment_refuses_an_online_experiment(tmp_path):
    from flexseg.commands.augment import augment

    exp = load_experiment(
        write_yaml(tmp_path / "e.yaml", tiny_experiment(augment={"online": True, "transforms": TRANSFORMS}))
    )
    with pytest.raises(ConfigError, match="augment.online is true"):
        augment(exp)


def test_one_seed_drives_split_and_augment_unless_they_set_their_own(tmp_path):
    exp = load_experiment(write_yaml(tmp_path / "e.yaml", tiny_experiment(train={"seed": 42})))
    assert exp.split.seed == 42 and exp.augment.seed == 42
    own = load_experiment(write_yaml(tmp_path / "o.yaml", tiny_experiment(train={"seed": 42}, split={"seed": 7})))
    assert own.split.seed == 7 and own.augment.seed == 42
