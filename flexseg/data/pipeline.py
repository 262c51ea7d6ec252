"""tf.data input pipelines: files are decoded in parallel as batches are needed, never all at once."""

from __future__ import annotations

import os  # paths go through tf.data as bytes: a name that is not UTF-8 stays itself
from pathlib import Path

import numpy as np

from flexseg import tfenv  # noqa: I001 (TensorFlow's settings before it loads)

tfenv.load_tensorflow()

import tensorflow as tf

from flexseg.data.classes import ClassMap
from flexseg.data.io import read_image, read_mask, resize
from flexseg.errors import DataError

AUTOTUNE = tf.data.AUTOTUNE


def load_pair(
    image_path: Path,
    mask_path: Path,
    width: int,
    height: int,
    channels: int,
    class_map: ClassMap,
    augment: OnlineAugmenter | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Image (H, W, C) uint8 and class indices (H, W) uint8 at the model's size.

    ``augment`` (an :class:`OnlineAugmenter`) transforms the pair at its own size first, as
    ``flexseg augment`` does, so a transform's pixel arguments mean the same in both modes.
    """
    image = read_image(image_path, channels)
    indices = class_map.to_indices(read_mask(mask_path)).indices
    if image.shape[:2] != indices.shape:
        raise DataError(
            f"{image_path} is {image.shape[1]}×{image.shape[0]} but its mask {mask_path.name} is "
            f"{indices.shape[1]}×{indices.shape[0]}: not a pair"
        )
    if augment is not None:
        image, indices = augment(image, indices, seed)
    return resize(image, width, height), resize(indices, width, height, nearest=True)


class OnlineAugmenter:
    """The experiment's albumentations transforms, applied to one pair per call. Every call is
    seeded with a number the input pipeline draws from the experiment's seed, so the augmented
    stream does not depend on which thread runs which element."""

    def __init__(self, transforms: list) -> None:
        from flexseg.transforms import SeededPipeline

        self.pipeline = SeededPipeline(transforms)

    def __call__(self, image: np.ndarray, indices: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        return self.pipeline(image, indices, np.random.SeedSequence(int(seed) & 0xFFFFFFFFFFFFFFFF))


def segmentation_dataset(
    pairs: list[tuple[Path, Path]],
    *,
    width: int,
    height: int,
    channels: int,
    class_map: ClassMap,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    augment: OnlineAugmenter | None = None,
    shard: tuple[int, int] = (1, 0),
    drop_single: bool = False,
) -> tf.data.Dataset:
    """Batches of (image float32 0..255, one-hot mask float32).

    ``drop_single`` leaves out a last batch of one pair (see flexseg.model.prediction).

    With ``augment`` every element gets a fresh random transform each epoch, drawn from a
    random stream seeded by ``seed``. ``shard=(n, i)`` keeps every n-th element from the i-th
    (after the shuffle, which is the same on every worker for the same seed).
    """
    num_classes = len(class_map)

    def _load(img_path: tf.Tensor, mask_path: tf.Tensor, element_seed: tf.Tensor):
        return load_pair(
            Path(os.fsdecode(img_path)),
            Path(os.fsdecode(mask_path)),
            width,
            height,
            channels,
            class_map,
            augment,
            element_seed,
        )

    def _map(paths: tf.Tensor, element_seed: tf.Tensor):
        image, indices = tf.numpy_function(_load, [paths[0], paths[1], element_seed], [tf.uint8, tf.uint8])
        return tf.ensure_shape(image, (height, width, channels)), tf.ensure_shape(indices, (height, width))

    def _to_float(images: tf.Tensor, indices: tf.Tensor):  # once a batch: fewer, larger ops
        return tf.cast(images, tf.float32), tf.one_hot(indices, num_classes, dtype=tf.float32)

    files = tf.data.Dataset.from_tensor_slices([[os.fsencode(p), os.fsencode(m)] for p, m in pairs])
    if shuffle:
        files = files.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=True)
    seeds = (
        tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        if augment is not None
        else tf.data.Dataset.from_tensors(tf.constant(0, tf.int64)).repeat()
    )
    ds = tf.data.Dataset.zip(files, seeds)
    if shard[0] > 1:
        ds = ds.shard(*shard)
    ds = ds.map(_map, num_parallel_calls=AUTOTUNE).batch(batch_size, drop_remainder=drop_single)
    return ds.map(_to_float, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)


def image_dataset(
    paths: list[Path], *, width: int, height: int, channels: int, batch_size: int, errors: dict[int, str] | None = None
) -> tf.data.Dataset:
    """Batches of (image float32 at model size, original (height, width), index into ``paths``).
    An unreadable file comes through as a blank image of original size (0, 0): the caller decides
    whether to skip it (infer) or stop (evaluate); an error raised here would reach it wrapped in
    a TensorFlow error and end the whole stream. ``errors`` receives the reason, by index."""

    def _load(index: tf.Tensor, path: tf.Tensor):
        try:
            img = read_image(Path(os.fsdecode(path)), channels)
        except DataError as e:
            if errors is not None:
                errors[int(index)] = str(e)
            return np.zeros((height, width, channels), np.uint8), np.zeros(2, np.int32)
        return resize(img, width, height), np.array(img.shape[:2], np.int32)

    def _map(index: tf.Tensor, path: tf.Tensor):
        image, size = tf.numpy_function(_load, [index, path], [tf.uint8, tf.int32])
        image = tf.ensure_shape(tf.cast(image, tf.float32), (height, width, channels))
        return image, tf.ensure_shape(size, (2,)), index

    ds = tf.data.Dataset.from_tensor_slices((np.arange(len(paths)), [os.fsencode(p) for p in paths]))
    return ds.map(_map, num_parallel_calls=AUTOTUNE).batch(batch_size).prefetch(AUTOTUNE)
