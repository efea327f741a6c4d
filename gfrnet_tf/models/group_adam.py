"""Adam with a learning-rate multiplier for one group of variables: PyTorch's parameter groups.

GFRNet's generator optimizer uses it to train WarpNet at `group_multiplier` times RecNet's
rate in the joint phase (`config.train.warpnet_lr_multiplier`; the PyTorch
reimplementation gives WarpNet a parameter group at 0.001 times the rate).

Why one optimizer with a group, not another optimizer for WarpNet in the joint phase: the
group's rate is computed at every step from the optimizer's own learning rate, so whatever
sets that rate (the §4.2 plateau step-down, a restored backup, a loaded `.keras` file)
moves the group's too, always `multiplier` times; multiplier 1 is the plain Adam bit for
bit; and the optimizer has exactly a plain Adam's variables, so checkpoints and backups
written before the option existed load unchanged. Scaling the gradients instead would
multiply nothing: Adam's step does not depend on the gradients' scale. Under mixed
precision it is the inner optimizer of a `LossScaleOptimizer`, which unscales the
gradients before the update. (WarpNet's pre-training has an optimizer of its own,
`GFRNet.w_optimizer`: each phase starts its own Adam state.)

The group is named per update by `group_learning_rate(optimizer, variables)` around
`apply` (read when the step is traced).
"""

from __future__ import annotations

import contextlib

import keras

from gfrnet_tf.errors import check_non_negative


def check_multiplier(value, source: str) -> float:
    """`value` as a float if it is a finite number >= 0, else `BadConfigError(source, ...)`."""
    return check_non_negative(value, source, " (0 freezes, 1 = the plain rate)")


@keras.saving.register_keras_serializable(package="gfrnet_tf")
class GroupAdam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` whose variables named by `group_learning_rate` step at
    `group_multiplier` times the learning rate (0 leaves them unchanged; their moments
    still follow the gradients, as PyTorch's do at a learning rate of 0)."""

    def __init__(self, *args, group_multiplier=1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.group_multiplier = check_multiplier(group_multiplier, "group_multiplier")
        self._group = frozenset()

    def update_step(self, gradient, variable, learning_rate):
        if self._var_key(variable) in self._group:
            learning_rate = learning_rate * self.group_multiplier
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "group_multiplier": self.group_multiplier}


@contextlib.contextmanager
def group_learning_rate(optimizer, variables):
    """Within the block, `optimizer.apply` steps `variables` at its group rate.

    `optimizer` may be a `GroupAdam`, one wrapped in a `LossScaleOptimizer`, or any other
    optimizer, which has no group rate: its variables all step at its learning rate.
    """
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    if not isinstance(inner, GroupAdam):
        yield
        return
    previous = inner._group
    inner._group = frozenset(inner._var_key(variable) for variable in variables)
    try:
        yield
    finally:
        inner._group = previous
