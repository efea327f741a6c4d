"""Choosing a `tf.distribute` strategy, and the one place that patches Keras for multi-worker.

Why a patch: Keras 3.15 `fit` under a multi-worker `MultiWorkerMirroredStrategy` fails at two
places (keras-team/keras#20585, tensorflow/tensorflow#72388):
1. `_maybe_symbolic_build` all-reduces a *data batch* to learn shapes ("Attempt to convert a
   value (PerReplica...)"). The model and both optimizers are built before `fit` anyway (see
   below), so the symbolic build has nothing to do and is skipped.
2. `reduce_per_replica` reduces each metric with `strategy.reduce("MEAN", v, axis=0)`, which
   rejects the scalar metrics every Keras `train_step` returns. Returning them with shape `[1]`
   makes that reduction a plain mean; the logs are scalars again after it.
Measured on 2 localhost workers (tests/test_distribute.py): unpatched `fit` fails, patched
`fit` ends with identical metrics and weights on both workers. That test also asserts the
unpatched failure, so it fails -- and this module should shrink -- once upstream is fixed.

Building before `fit`: a two-optimizer `train_step` under `MirroredStrategy` fails with "You
must feed a value for placeholder tensor" unless the sub-models and both optimizers are built
under the strategy scope first (docs/DESIGN.md, Known traps); `GFRNet.build_all` does that.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf
from absl import logging

from gfrnet_tf.errors import BadConfigError
from gfrnet_tf.training.strategies import STRATEGIES


def _tf_config_worker_count() -> int:
    """Number of tasks in the `TF_CONFIG` cluster (0 when it is unset)."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return 0
    try:
        cluster = json.loads(raw)["cluster"]
        return sum(len(cluster.get(kind, [])) for kind in ("chief", "worker"))
    except (ValueError, KeyError, TypeError) as error:
        raise BadConfigError("TF_CONFIG", f"not a cluster description: {error}") from None


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The strategy for `--strategy`; `auto` picks multi-worker, then multi-GPU, then none."""
    if name not in STRATEGIES:
        raise BadConfigError("--strategy", f"{name!r} is not one of {', '.join(STRATEGIES)}")
    workers = _tf_config_worker_count()
    if name == "auto":
        if workers > 1:
            name = "multiworker"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "none"
    if name == "multiworker":
        if workers == 0:
            raise BadConfigError(
                "TF_CONFIG", "--strategy=multiworker needs TF_CONFIG to list the workers"
            )
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    elif name == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
    else:
        strategy = tf.distribute.get_strategy()
    logging.info(
        "strategy %s with %d replica(s)", type(strategy).__name__, strategy.num_replicas_in_sync
    )
    return strategy


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    """True when collectives span several workers (Keras' own test for its multi-worker path)."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and bool(
        strategy.extended._in_multi_worker_mode()
    )


def task_name(strategy: tf.distribute.Strategy) -> str:
    """`worker-0`, `worker-1`, ... for multi-worker runs, `local` otherwise (per-task file
    names)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not is_multi_worker(strategy) or resolver is None:
        return "local"
    return f"{resolver.task_type}-{resolver.task_id}"


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Only the chief writes shared artefacts (TensorBoard, checkpoints); worker 0 if no chief."""
    if not is_multi_worker(strategy):
        return True
    resolver = strategy.cluster_resolver
    if "chief" in resolver.cluster_spec().as_dict():
        return resolver.task_type == "chief"
    return resolver.task_type == "worker" and resolver.task_id == 0


def patch_for_multi_worker(model) -> None:
    """Work around Keras 3 multi-worker `fit` (module docstring); a no-op elsewhere.

    Call after building the model and its optimizers under the strategy scope. Patches the
    instance only, so other models in the process are unaffected.
    """
    if not is_multi_worker(model.distribute_strategy):
        return
    setattr(model, "_maybe_symbolic_build", lambda *args, **kwargs: None)
    for step_name in ("train_step", "test_step"):
        setattr(model, step_name, _with_vector_metrics(getattr(model, step_name)))


def _with_vector_metrics(step):
    def step_with_vector_metrics(data):
        return {name: tf.reshape(value, [1]) for name, value in step(data).items()}

    return step_with_vector_metrics
