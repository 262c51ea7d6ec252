"""The predictor (flexseg.inference): one model or an ensemble, TTA, tiles, post-processing."""

from __future__ import annotations

import numpy as np
import pytest

from flexseg.errors import RunError
from flexseg.inference import PredictOptions, Predictor
from flexseg.model.store import ModelCard, save_model, write_card


def small_model(seed: int, classes: int = 3):
    import keras

    from flexseg.model.flexunet import build_flexunet

    keras.utils.set_random_seed(seed)
    return build_flexunet(width=32, height=32, channels=3, num_classes=classes, base_filters=4, num_layers=3)


def card(classes: int = 3) -> ModelCard:
    return ModelCard(
        experiment="t",
        class_names=[f"c{i}" for i in range(classes)],
        class_colors=[[i * 80, 0, 0] for i in range(classes)],
        width=32,
        height=32,
        channels=3,
        input_normalize=True,
    )


@pytest.fixture(scope="module")
def members():
    return [small_model(1), small_model(2), small_model(3)]


@pytest.mark.parametrize("tta", [False, True])
def test_ensemble_probabilities_are_the_mean_of_the_members(members, tta):
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3)).astype(np.float32)
    options = PredictOptions(tta=tta)
    each = [Predictor([m], card(), options).batch(images) for m in members]
    together = Predictor(members, card(), options).batch(images)
    assert together.shape == (3, 32, 32, 3)
    assert np.allclose(together, np.mean(each, axis=0), atol=1e-6)
    assert not np.allclose(each[0], each[1], atol=1e-3)  # the members differ, so the mean is not one of them
    assert np.allclose(together.sum(-1), 1.0, atol=1e-5)


def test_ensemble_at_an_images_own_size_and_by_tiles(members):
    image = np.random.default_rng(1).integers(0, 256, (48, 70, 3)).astype(np.uint8)
    for options in (PredictOptions(), PredictOptions(tiles=True)):
        each = [Predictor([m], card(), options).images([image])[0] for m in members]
        together = Predictor(members, card(), options).images([image])[0]
        assert together.shape == (48, 70, 3)
        assert np.allclose(together, np.mean(each, axis=0), atol=1e-5)


def test_loading_an_ensemble_refuses_members_of_another_experiment(tmp_path):
    for name, classes in (("a", 3), ("b", 3), ("c", 2)):
        save_model(small_model(1, classes), tmp_path / name)
        write_card(tmp_path / name, card(classes))
    loaded = Predictor.from_runs([tmp_path / "a", tmp_path / "b"], precision="float32")
    assert len(loaded.models) == 2 and loaded.num_classes == 3
    with pytest.raises(RunError, match="class_names"):
        Predictor.from_runs([tmp_path / "a", tmp_path / "c"], precision="float32")
