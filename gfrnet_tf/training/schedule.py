"""The §4.1 learning-rate schedule: 2e-4 -> 2e-5 -> 2e-6 when validation l2 stops decreasing."""

from __future__ import annotations

import math

import keras
from absl import logging


class StepDownOnPlateau(keras.callbacks.Callback):
    """Moves every optimizer to the next learning rate after `patience` epochs without progress.

    Unlike `keras.callbacks.ReduceLROnPlateau` it drives several optimizers (GFRNet has one for
    the generator and one for the discriminators) through a fixed list of rates, as the paper
    does. Epochs whose logs lack `monitor` (no validation run that epoch) are not counted.
    On resume the current rate is read back from the restored optimizer, so the step reached
    before the interruption is kept; only the patience counter starts afresh.
    """

    def __init__(self, learning_rates, monitor="val_l2", patience=2, min_delta=0.0,
                 optimizer_attrs=("g_optimizer", "d_optimizer")):
        super().__init__()
        self.learning_rates = [float(rate) for rate in learning_rates]
        self.monitor = monitor
        self.patience = patience
        self.min_delta = min_delta
        self.optimizer_attrs = tuple(optimizer_attrs)
        self.stage = 0
        self.best = math.inf
        self.wait = 0

    def _optimizers(self):
        return [getattr(self.model, name) for name in self.optimizer_attrs]

    def on_train_begin(self, logs=None):
        current = float(keras.ops.convert_to_numpy(self._optimizers()[0].learning_rate))
        # Closest listed rate in log space: robust to float32 rounding of the stored value.
        self.stage = min(range(len(self.learning_rates)),
                         key=lambda i: abs(math.log(self.learning_rates[i] / current)))
        self._apply()

    def _apply(self):
        for optimizer in self._optimizers():
            optimizer.learning_rate = self.learning_rates[self.stage]

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        value = logs.get(self.monitor)
        if value is not None:
            self._update(epoch, float(value))
        logs["learning_rate"] = self.learning_rates[self.stage]

    def _update(self, epoch, value):
        if value < self.best - self.min_delta:
            self.best, self.wait = value, 0
            return
        self.wait += 1
        if self.wait >= self.patience and self.stage + 1 < len(self.learning_rates):
            self.stage += 1
            self.wait = 0
            self._apply()
            logging.info("epoch %d: %s did not improve on %.4g for %d epochs, learning rate -> %g",
                         epoch + 1, self.monitor, self.best, self.patience,
                         self.learning_rates[self.stage])
