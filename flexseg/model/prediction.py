"""Prediction, and batch sizes that keep clear of oneDNN's batch-of-one trap.

flexseg turns TensorFlow's oneDNN kernels on (tfenv.prepare): on CPUs without AVX-512
they make training 1.4× faster. But for some convolutions oneDNN has no fast kernel at batch 1
and falls back to a reference loop: NBM's 7×7 64→32 convolution at 256×256 takes 128 s at
batch 1 and 0.15 s at batch 2. So flexseg never runs a model on a batch of one image.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import keras

MIN_BATCH = 2


def predict(model: keras.Model, images: np.ndarray, *, direct: bool = False) -> np.ndarray:
    """Class probabilities for a batch of images. A batch of one is padded with a copy of its
    image and the copy's output dropped. ``direct`` calls the model instead of
    ``predict_on_batch`` (no cross-replica step, for callbacks under tf.distribute)."""
    images = np.asarray(images)
    n = len(images)
    if 0 < n < MIN_BATCH:
        images = np.concatenate([images] + [images[-1:]] * (MIN_BATCH - n))
    probs = model(images, training=False) if direct else model.predict_on_batch(images)
    return np.asarray(probs)[:n]


def drops_last_single(count: int, batch_size: int) -> bool:
    """Whether a training epoch of ``count`` pairs leaves one pair alone in its last batch. That
    pair is left out of the epoch (the order is shuffled, so a different one each epoch)."""
    return batch_size >= MIN_BATCH and count > 1 and count % batch_size == 1


def steps_per_epoch(count: int, batch_size: int) -> int:
    return count // batch_size if drops_last_single(count, batch_size) else -(-count // batch_size)


def evaluation_batch_size(count: int, batch_size: int) -> int:
    """The smallest batch size ≥ ``batch_size`` that splits ``count`` images into no batch of one
    (validation and evaluation must see every image once; a batch of one image alone is
    unavoidable, and the batch of two predict() makes of it costs a second image's time)."""
    size = max(batch_size, MIN_BATCH)
    while count > 1 and count % size == 1:
        size += 1
    return size
