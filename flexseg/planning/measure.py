"""The measured cost of one training step of a planned model on this machine."""

from __future__ import annotations

import time

import numpy as np

WARMUP_STEPS = 2  # the first steps trace and compile
TIMED_STEPS = 5  # the median of five: a busy moment on the machine moves one, not the result


def step_seconds(exp_raw: dict, width: int, height: int, base_filters: int, batch: int, layers: int) -> float:
    """Median seconds of a training step of the FlexUNet ``exp_raw`` describes (a planned experiment
    as a mapping) at ``width``×``height``, ``base_filters``, ``batch`` and ``layers``, on random
    pixels, in the precision training would use here."""
    from flexseg import tfenv

    tfenv.prepare()
    tfenv.import_tensorflow_quietly()
    import keras

    from flexseg.config import Experiment
    from flexseg.training.fit import compiled_model

    raw = {
        **exp_raw,
        "image": {**exp_raw["image"], "width": width, "height": height},
        "model": {**exp_raw["model"], "base_filters": base_filters, "num_layers": layers},
        "train": {**exp_raw["train"], "batch_size": batch},
    }
    raw = {k: v for k, v in raw.items() if k in ("name", "classes", "image", "model", "train")}
    exp = Experiment.model_validate(raw)
    keras.backend.clear_session()
    model = compiled_model(exp)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (batch, height, width, exp.image.channels)).astype(np.float32)
    y = np.zeros((batch, height, width, exp.num_classes), np.float32)
    y[..., 0] = 1.0
    times = []
    for i in range(WARMUP_STEPS + TIMED_STEPS):
        t0 = time.perf_counter()
        model.train_on_batch(x, y)
        if i >= WARMUP_STEPS:
            times.append(time.perf_counter() - t0)
    del model
    keras.backend.clear_session()
    return float(np.median(times))
