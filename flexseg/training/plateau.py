"""Learning-rate reduction and early stopping on a val_loss plateau, each keeping its counters in a
``Plateau`` (``training.state``) that the resume state saves and puts back as it is (no Keras
callback attributes reached into).

The rules are Keras' own (``ReduceLROnPlateau`` with min_delta 1e-4, no cooldown, no floor;
``EarlyStopping`` with min_delta 0), so runs train as they did with Keras' callbacks."""

from __future__ import annotations

from flexseg import tfenv  # noqa: I001 (TensorFlow's settings before it loads)

tfenv.load_tensorflow()

import keras

from flexseg.training.state import Plateau

REDUCE_MIN_DELTA = 1e-4  # Keras' ReduceLROnPlateau default: an improvement smaller than this is none


class ReduceOnPlateau(keras.callbacks.Callback):
    """Multiply the learning rate by ``factor`` after ``patience`` epochs without a val_loss
    better by ``REDUCE_MIN_DELTA``; puts the learning rate into the epoch's logs (the history)."""

    def __init__(self, factor: float, patience: int, state: Plateau | None = None) -> None:
        super().__init__()
        self.factor, self.patience = factor, patience
        self.state = state or Plateau()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs if logs is not None else {}
        optimizer = self.model.optimizer
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        current = logs.get("val_loss")
        if current is None:
            return
        s = self.state
        if s.cooldown_counter > 0:
            s.cooldown_counter -= 1
            s.wait = 0
        if current < s.best - REDUCE_MIN_DELTA:
            s.best, s.wait = float(current), 0
        elif s.cooldown_counter <= 0:
            s.wait += 1
            if s.wait >= self.patience:
                rate = logs["learning_rate"]
                if rate > 0.0:
                    optimizer.learning_rate = rate * self.factor
                s.wait = 0


class StopOnPlateau(keras.callbacks.Callback):
    """Stop training after ``patience`` epochs without a lower val_loss."""

    def __init__(self, patience: int, state: Plateau | None = None) -> None:
        super().__init__()
        self.patience = patience
        self.state = state or Plateau()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        current = (logs or {}).get("val_loss")
        if current is None:
            return
        s = self.state
        s.wait += 1
        if current < s.best:
            s.best, s.best_epoch, s.wait = float(current), epoch, 0
            return
        if s.wait >= self.patience and epoch > 0:
            self.model.stop_training = True
