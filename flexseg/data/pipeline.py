"""tf.data input pipelines: files are decoded in parallel as batches are needed, never all at once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from flexseg.data.classes import ClassMap
from flexseg.data.io import read_image, read_mask, resize

AUTOTUNE = tf.data.AUTOTUNE


def load_pair(image_path: Path, mask_path: Path, width: int, height: int, channels: int, class_map: ClassMap):
    """Image (H, W, C) uint8 and class indices (H, W) uint8 at the model's size."""
    image = resize(read_image(image_path, channels), width, height)
    indices = class_map.to_indices(read_mask(mask_path)).indices
    return image, resize(indices, width, height, nearest=True)


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
) -> tf.data.Dataset:
    """Batches of (image float32 0..255, one-hot mask float32)."""
    num_classes = len(class_map)

    def _load(img_path, mask_path):
        return load_pair(Path(img_path.decode()), Path(mask_path.decode()), width, height, channels, class_map)

    def _map(img_path, mask_path):
        image, indices = tf.numpy_function(_load, [img_path, mask_path], [tf.uint8, tf.uint8])
        image = tf.ensure_shape(tf.cast(image, tf.float32), (height, width, channels))
        onehot = tf.one_hot(tf.ensure_shape(indices, (height, width)), num_classes, dtype=tf.float32)
        return image, onehot

    ds = tf.data.Dataset.from_tensor_slices(([str(p) for p, _ in pairs], [str(m) for _, m in pairs]))
    if shuffle:
        ds = ds.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=True)
    return ds.map(_map, num_parallel_calls=AUTOTUNE).batch(batch_size).prefetch(AUTOTUNE)


def image_dataset(paths: list[Path], *, width: int, height: int, channels: int, batch_size: int) -> tf.data.Dataset:
    """Batches of (image float32 at model size, original (height, width), index into ``paths``)."""

    def _load(path):
        img = read_image(Path(path.decode()), channels)
        return resize(img, width, height), np.array(img.shape[:2], np.int32)

    def _map(index, path):
        image, size = tf.numpy_function(_load, [path], [tf.uint8, tf.int32])
        image = tf.ensure_shape(tf.cast(image, tf.float32), (height, width, channels))
        return image, tf.ensure_shape(size, (2,)), index

    ds = tf.data.Dataset.from_tensor_slices((np.arange(len(paths)), [str(p) for p in paths]))
    return ds.map(_map, num_parallel_calls=AUTOTUNE).batch(batch_size).prefetch(AUTOTUNE)
