"""The §4.2 learning-rate schedule: 2e-4 -> 2e-5 -> 2e-6 when a validation loss stops decreasing.

§4.2 watches "the reconstruction loss on validation set": Eq. 6's weighted l2 + perceptual
(`val_reconstruction`, the `paper` preset). The project's presets watch the l2 term alone
(`val_l2`); without VGG-Face weights the two make the same decisions.
"""

from __future__ import annotations

import math

import keras
from absl import logging

from gfrnet_tf.errors import BadConfigError

PLATEAU_MONITORS = ("val_l2", "val_reconstruction")


class StepDownOnPlateau(keras.callbacks.Callback):
    """Moves every optimizer to the next learning rate after `patience` epochs without progress.

    Unlike `keras.callbacks.ReduceLROnPlateau` it drives several optimizers (GFRNet has one for
    the generator and one for the discriminators) through a fixed list of rates, as the paper
    does. Epochs whose logs lack `monitor` (no validation run that epoch) are not counted.
    The current step is read from the optimizer each time, so after a resume the restored
    rate holds, whatever the callback order; only the patience counter starts afresh.
    """

    def __init__(
        self,
        learning_rates,
        monitor="val_l2",
        patience=2,
        min_delta=0.0,
        optimizer_attrs=("g_optimizer", "d_optimizer"),
    ):
        super().__init__()
        self.learning_rates = [float(rate) for rate in learning_rates]
        self.monitor = monitor
        self.patience = patience
        self.min_delta = min_delta
        self.optimizer_attrs = tuple(optimizer_attrs)
        self.best = math.inf
        self.wait = 0

    def _optimizers(self):
        return [getattr(self.model, name) for name in self.optimizer_attrs]

    @property
    def stage(self) -> int:
        """Index of the listed rate closest (in log space, robust to float32 rounding) to the
        first optimizer's current rate: read, not stored, so a restored optimizer decides."""
        current = float(keras.ops.convert_to_numpy(self._optimizers()[0].learning_rate))
        return min(
            range(len(self.learning_rates)),
            key=lambda i: abs(math.log(self.learning_rates[i] / current)),
        )

    def _apply(self, stage):
        for optimizer in self._optimizers():
            optimizer.learning_rate = self.learning_rates[stage]

    def on_train_begin(self, logs=None):
        self.best, self.wait = math.inf, 0
        self._apply(self.stage)

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
        stage = self.stage
        if self.wait >= self.patience and stage + 1 < len(self.learning_rates):
            self.wait = 0
            self._apply(stage + 1)
            logging.info(
                "epoch %d: %s did not improve on %.4g for %d epochs, learning rate -> %g",
                epoch + 1,
                self.monitor,
                self.best,
                self.patience,
                self.learning_rates[stage + 1],
            )


def plateau_schedule(train_config) -> StepDownOnPlateau:
    """The schedule of `config.train`: its rates, patience and `plateau_monitor` (one of
    `PLATEAU_MONITORS`; "val_l2" for configs saved before the key existed)."""
    monitor = train_config.get("plateau_monitor", "val_l2")
    if monitor not in PLATEAU_MONITORS:
        raise BadConfigError(
            "config.train.plateau_monitor", f"{monitor!r} is not one of {PLATEAU_MONITORS}"
        )
    return StepDownOnPlateau(
        train_config.learning_rates, monitor=monitor, patience=train_config.plateau_patience
    )
