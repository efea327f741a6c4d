r"""gfrnet-train: trains GFRNet with `model.fit` -- WarpNet pre-training, then joint training.

    gfrnet-train --config configs/smoke.py --workdir runs/smoke \
        --data 'shards/train-*.tfrecord' --val_data 'shards/val-*.tfrecord' \
        [--synthetic_pose] [--strategy auto|mirrored|multiworker|none] [--mixed_precision] \
        [--config.train.epochs=3 ...]

Re-running the same command after an interruption (even kill -9) resumes from the last
backup. In WORKDIR: `config.json` (the resolved config), `checkpoints/step-N.weights.h5`
(sub-models and optimizer state), `backup/` (resume state), `tensorboard/`.

One progress-bar "epoch" of `fit` is one checkpoint interval (`train.checkpoint_every`
steps), not a pass over the data: Keras' `BackupAndRestore` resumes at epoch boundaries, so
this makes a restart continue exactly at the saved step. Validation (over all of
`--val_data`) and the learning-rate schedule run once per data epoch
(`train.steps_per_epoch` steps).
"""

from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags, logging

from gfrnet_tf.apps import common
from gfrnet_tf.configs import save_config
from gfrnet_tf.data import make_dataset
from gfrnet_tf.data.records import record_errors
from gfrnet_tf.errors import BadConfigError
from gfrnet_tf.models.gfrnet import build_gfrnet
from gfrnet_tf.training import callbacks as callbacks_lib
from gfrnet_tf.training import distribute
from gfrnet_tf.training.schedule import StepDownOnPlateau
from gfrnet_tf.training.shards import check_shards, validation_steps

CONFIG = common.define_config_flag()
WORKDIR = flags.DEFINE_string("workdir", None, "Folder for checkpoints, resume state and TensorBoard logs.")
DATA = flags.DEFINE_string("data", None, "Glob of the training TFRecord shards.")
VAL_DATA = flags.DEFINE_string("val_data", None, "Glob of the validation shards (drives the LR schedule).")
SYNTHETIC_POSE = flags.DEFINE_bool(
    "synthetic_pose", False, "Make each guide from its target by a random warp (input.synthetic_pose).")
MIXED_PRECISION = flags.DEFINE_bool("mixed_precision", False, "mixed_float16 on GPUs (ignored on CPU).")
common.define_strategy_flag()
flags.mark_flags_as_required(["config", "workdir", "data"])


def check_train_config(train):
    """Raises `BadConfigError` for schedule settings `fit` cannot follow."""
    for key in ("steps_per_epoch", "checkpoint_every", "summary_every", "epochs"):
        if train[key] < 1:
            raise BadConfigError(f"config.train.{key}", f"must be >= 1, got {train[key]}")
    if train.steps_per_epoch % train.checkpoint_every:
        raise BadConfigError("config.train.checkpoint_every",
                             f"{train.checkpoint_every} does not divide steps_per_epoch {train.steps_per_epoch}")


def distributed_dataset(strategy, files, input_config, training):
    """Each replica reads its share, repeated: `fit` counts steps, not passes.

    Full batches only, validation too: its `validation_steps` counts the whole batches of
    one pass, and a partial batch would shift every later pass of the repeated set.
    """
    def dataset_fn(context):
        return make_dataset(files, input_config, training, input_context=context,
                            drop_remainder=True).repeat()

    return strategy.distribute_datasets_from_function(dataset_fn)


def make_optimizer(train, learning_rate, mixed_precision):
    optimizer = keras.optimizers.Adam(learning_rate, beta_1=train.adam_beta_1)
    return keras.optimizers.LossScaleOptimizer(optimizer) if mixed_precision else optimizer


def build_model(config, strategy, mixed_precision):
    """GFRNet with every variable (both optimizers' too) created under the strategy scope."""
    size = config.input.image_size
    with strategy.scope():
        model = build_gfrnet(config.model)
        model.compile(
            g_optimizer=make_optimizer(config.train, config.train.learning_rates[0], mixed_precision),
            d_optimizer=make_optimizer(config.train, config.train.learning_rates[0], mixed_precision),
            jit_compile=config.train.jit_compile,
        )
        model.build_all((size, size))
    distribute.patch_for_multi_worker(model)
    return model


def fixed_batch(files, input_config):
    """One deterministic `(inputs, targets)` numpy batch for the TensorBoard image grid."""
    batch = next(iter(make_dataset(files, input_config, training=False)))
    return tf.nest.map_structure(np.asarray, batch)


def make_callbacks(config, workdir, strategy, grid_files):
    """NaN stop first (it must fire before anything saves), resume state, then chief-only logs
    (the image grid shows the first batch of `grid_files`)."""
    checkpoints = os.path.join(workdir, "checkpoints")
    callbacks = [
        callbacks_lib.StopOnNonFinite(checkpoints),
        # One backup per task: every worker must restore the same state, and Keras'
        # callback knows nothing of workers.
        callbacks_lib.BackupAndRestore(
            os.path.join(workdir, "backup", distribute.task_name(strategy)),
            save_freq="epoch", double_checkpoint=True, delete_checkpoint=False),
    ]
    if distribute.is_chief(strategy):
        callbacks += [
            callbacks_lib.StepCheckpoint(checkpoints, keep=config.train.keep_checkpoints),
            callbacks_lib.TensorBoardLogger(
                os.path.join(workdir, "tensorboard"), config.train.summary_every,
                fixed_batch(grid_files, config.input)),
        ]
    return callbacks


def train(model, config, train_data, val_data, val_steps, callbacks):
    """§4.1: WarpNet on the flow loss for `warp_pretrain_epochs`, then the full objective.

    Both phases share one epoch count and one backup, so a resumed run skips a finished
    pre-training (its `fit` starts at the restored epoch, past its end).
    """
    train_config = config.train
    rounds_per_epoch = train_config.steps_per_epoch // train_config.checkpoint_every
    fit = dict(x=train_data, steps_per_epoch=train_config.checkpoint_every, shuffle=False,
               validation_data=val_data, validation_steps=val_steps, validation_freq=rounds_per_epoch,
               verbose=1)
    pretrain_rounds = 0
    if train_config.warp_pretrain_epochs:  # variants without a flow loss refuse the "warp" phase
        pretrain_rounds = train_config.warp_pretrain_epochs * rounds_per_epoch
        model.phase = "warp"
        model.fit(epochs=pretrain_rounds, callbacks=callbacks, **fit)
    model.phase = "joint"
    schedule = StepDownOnPlateau(train_config.learning_rates, monitor="val_l2",
                                 patience=train_config.plateau_patience)
    # The schedule goes first: it acts only at epoch ends, where the backup should hold the
    # new rate and TensorBoard should see it; at batch ends the NaN stop still comes first.
    model.fit(initial_epoch=pretrain_rounds, epochs=pretrain_rounds + train_config.epochs * rounds_per_epoch,
              callbacks=[schedule, *callbacks], **fit)


def resolved_config():
    """The flag config plus the command-line switches that change it, checked."""
    config = CONFIG.value
    if SYNTHETIC_POSE.value:
        config.input.synthetic_pose.enabled = True
    check_train_config(config.train)
    return config


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    config = resolved_config()
    strategy = common.strategy_from_flags()
    mixed_precision = distribute.configure_mixed_precision(MIXED_PRECISION.value)
    keras.utils.set_random_seed(config.train.seed)
    workdir = WORKDIR.value
    if distribute.is_chief(strategy):
        callbacks_lib.make_output_folder(workdir)
        save_config(config, os.path.join(workdir, "config.json"))
    train_files, _ = check_shards(DATA.value, records_per_shard=1)
    val_files, val_steps = None, None
    if VAL_DATA.value:
        val_files, val_steps = validation_steps(VAL_DATA.value, config.input.batch_size)
    else:
        logging.warning("no --val_data: the learning rate stays at %g", config.train.learning_rates[0])
    model = build_model(config, strategy, mixed_precision)
    train_data = distributed_dataset(strategy, train_files, config.input, training=True)
    val_data = None
    if val_files:
        val_data = distributed_dataset(strategy, val_files, config.input, training=False)
    with record_errors(", ".join(filter(None, (DATA.value, VAL_DATA.value)))):  # past the start-up check
        callbacks = make_callbacks(config, workdir, strategy, val_files or train_files)
        train(model, config, train_data, val_data, val_steps, callbacks)
    logging.info("done: %s", callbacks_lib.latest_checkpoint(os.path.join(workdir, "checkpoints")))


run = common.make_run(main)

if __name__ == "__main__":
    run()
