"""flexseg never runs a model on a batch of one image (oneDNN's slow reference kernels)."""

import numpy as np
import pytest

from flexseg.model.prediction import (
    drops_last_single,
    evaluation_batch_size,
    predict,
    steps_per_epoch,
)


def test_onednn_is_on():
    from flexseg.tfenv import onednn_enabled

    assert onednn_enabled()


class RecordingModel:
    """Returns each image's mean as a one-channel map and records the batch sizes it was given."""

    def __init__(self):
        self.sizes = []

    def _run(self, images):
        images = np.asarray(images)
        self.sizes.append(len(images))
        return images.mean(-1, keepdims=True)

    def predict_on_batch(self, images):
        return self._run(images)

    def __call__(self, images, training=False):
        assert training is False
        return self._run(images)


@pytest.mark.parametrize("direct", [False, True])
def test_predict_pads_a_single_image_and_drops_the_copy(direct):
    model = RecordingModel()
    image = np.random.default_rng(0).random((1, 8, 8, 3)).astype(np.float32)
    out = predict(model, image, direct=direct)
    assert model.sizes == [2]
    assert out.shape == (1, 8, 8, 1)
    np.testing.assert_allclose(out[0, ..., 0], image[0].mean(-1))


def test_predict_leaves_larger_batches_alone():
    model = RecordingModel()
    images = np.random.default_rng(1).random((3, 4, 4, 1)).astype(np.float32)
    out = predict(model, images)
    assert model.sizes == [3]
    np.testing.assert_allclose(out, images)


def test_predict_on_a_real_model_matches_batch_of_two():
    import keras

    from flexseg.model.flexunet import build_flexunet

    keras.utils.set_random_seed(0)
    model = build_flexunet(width=32, height=32, channels=1, num_classes=2, base_filters=2, num_layers=2)
    images = np.random.default_rng(2).integers(0, 256, (2, 32, 32, 1)).astype(np.float32)
    both = np.asarray(model.predict_on_batch(images))
    np.testing.assert_allclose(predict(model, images[1:]), both[1:], atol=1e-6)


@pytest.mark.parametrize(
    "count,batch,dropped,steps",
    [
        (10, 2, False, 5),
        (11, 2, True, 5),
        (7, 3, True, 2),
        (8, 3, False, 3),
        (1, 2, False, 1),
        (5, 1, False, 5),
    ],
)
def test_training_epochs_leave_out_only_a_lone_last_pair(count, batch, dropped, steps):
    assert drops_last_single(count, batch) is dropped
    assert steps_per_epoch(count, batch) == steps


@pytest.mark.parametrize(
    "count,batch,expected", [(10, 2, 2), (11, 2, 3), (7, 2, 4), (7, 3, 4), (9, 4, 5), (1, 2, 2), (5, 1, 3), (6, 1, 2)]
)
def test_evaluation_batches_never_hold_one_image(count, batch, expected):
    size = evaluation_batch_size(count, batch)
    assert size == expected
    assert count == 1 or count % size != 1


def test_training_dataset_drops_only_the_lone_pair(tmp_path):
    from flexseg.data.classes import ClassMap
    from flexseg.data.io import write_image, write_palette_mask
    from flexseg.data.pipeline import segmentation_dataset

    class_map = ClassMap(["background", "fg"], [(0, 0, 0), (255, 255, 255)])
    pairs = []
    for i in range(5):
        img, msk = tmp_path / f"{i}.png", tmp_path / f"{i}_m.png"
        write_image(img, np.full((16, 16), i * 10, np.uint8))
        write_palette_mask(msk, np.zeros((16, 16), np.uint8), class_map.palette())
        pairs.append((img, msk))
    common = dict(width=16, height=16, channels=1, class_map=class_map, batch_size=2, shuffle=True, seed=3)
    dropped = [len(x) for x, _ in segmentation_dataset(pairs, drop_single=True, **common)]
    kept = [len(x) for x, _ in segmentation_dataset(pairs, **common)]
    assert dropped == [2, 2] and kept == [2, 2, 1]
