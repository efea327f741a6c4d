"""Training as a library call: `train(config, workdir, dataset)` runs §4.2 end to end.

    from gfrnet_tf.configs import load_config
    from gfrnet_tf.data import PreparedDataset
    from gfrnet_tf.training import fit

    config = load_config("smoke")
    model = fit.train(config, "runs/smoke", PreparedDataset("data/"))

`gfrnet-train` is a thin command-line wrapper around `train`. `workdir` is a run folder
(`gfrnet_tf.runs`): the resolved config, step checkpoints (sub-models and optimizer state),
the resume state and TensorBoard logs. Calling `train` again on the same workdir
resumes from the last backup, even after kill -9; a workdir whose backup no longer fits
the model (another `config.model`) is refused before its `config.json` is rewritten.

One progress-bar "epoch" of `fit` is one checkpoint interval (`train.checkpoint_every`
steps), not a pass over the data: Keras' `BackupAndRestore` resumes at epoch boundaries, so
this makes a restart continue exactly at the saved step. Validation (one pass over the
validation split) and the learning-rate schedule run once per data epoch
(`train.steps_per_epoch` steps; 0 means one pass over the training split).
"""

from __future__ import annotations

import copy
import dataclasses

import keras
import ml_collections
import numpy as np
import tensorflow as tf
from absl import logging

from gfrnet_tf import precision as precision_lib
from gfrnet_tf.data import make_dataset
from gfrnet_tf.data.validation import record_errors
from gfrnet_tf.errors import BadConfigError
from gfrnet_tf.io.paths import make_output_dir
from gfrnet_tf.models.gfrnet import GFRNet, build_gfrnet, trained_settings
from gfrnet_tf.models.group_adam import GroupAdam, check_multiplier
from gfrnet_tf.runs import RunFolder
from gfrnet_tf.training import callbacks as callbacks_lib
from gfrnet_tf.training import distribute
from gfrnet_tf.training.schedule import plateau_schedule
from gfrnet_tf.training.shards import check_shards, validation_batches

VALIDATION_SPLIT = "val"


def train(config, workdir, dataset, *, strategy=None, mixed_precision=False, verbose=1) -> GFRNet:
    """Trains on `dataset`'s "train" split (validating on "val" if it has one); returns the model.

    `config` is a full config (`gfrnet_tf.configs.load_config`); it is not modified.
    `strategy` defaults to `distribute.make_strategy("auto")`. The networks compute in
    `config.train.precision` as this machine can (`choose_precision`); `mixed_precision=True`
    is the old switch: mixed_float16 on GPUs, ignored elsewhere.
    """
    strategy = strategy or distribute.make_strategy("auto")
    inputs = check_inputs(config, dataset, strategy.num_replicas_in_sync)
    config = inputs.config
    if distribute.is_chief(strategy):  # a workdir that is a file or read-only: fail now
        make_output_dir(workdir, create=False)
    precision = choose_precision(config.train, mixed_precision)
    precision_lib.log_choice(precision)
    keras.utils.set_random_seed(config.train.seed)
    if not config.model.vgg_face_weights:
        logging.warning(
            "No VGG-Face weights (config.model.vgg_face_weights): perceptual loss is off."
        )
    with precision_lib.policy_scope(precision.policy):
        model = build_model(config, strategy, precision.needs_loss_scaling)
    other_people = other_identity_guides(config.model)
    train_data = distributed_dataset(
        strategy,
        inputs.train_files,
        config.input,
        training=True,
        other_identity_guides=other_people,
    )
    val_data = None
    if inputs.val_files:
        val_data = distributed_dataset(
            strategy,
            inputs.val_files,
            inputs.val_input,
            training=False,
            other_identity_guides=other_people,
        )
    with record_errors(dataset.source):  # a bad record past the start-up check
        callbacks = make_callbacks(
            config, workdir, strategy, inputs.val_files or inputs.train_files
        )
        run_phases(model, config, train_data, val_data, inputs.val_steps, callbacks, verbose)
    logging.info("done: %s", RunFolder(workdir).latest_checkpoint())
    return model


@dataclasses.dataclass
class Inputs:
    """What `train` reads, checked: the resolved config, the shards, and the validation
    set's input config (its own batch size) and batches per pass (None: no validation)."""

    config: ml_collections.ConfigDict
    train_files: list[str]
    val_files: list[str] | None = None
    val_input: ml_collections.ConfigDict | None = None
    val_steps: int | None = None


def check_inputs(config, dataset, replicas: int = 1) -> Inputs:
    """Everything `train` needs of `config` and `dataset`, checked before anything is built
    or written (`gfrnet-ablate` checks every row's this way before training any): the
    resolved config, every training shard's headers and first record, and every validation
    record. An empty validation split is none."""
    config = resolve_config(config, dataset)
    train_files, _ = check_shards(dataset.files("train"), records_per_shard=1)
    if not dataset.has(VALIDATION_SPLIT) or dataset.records(VALIDATION_SPLIT) == 0:
        logging.warning(
            "no validation pairs: the learning rate stays at %g", config.train.learning_rates[0]
        )
        return Inputs(config, train_files)
    val_files, batch_size, steps = validation_batches(
        dataset.files(VALIDATION_SPLIT), config.input.batch_size, dataset.source, min_batch=replicas
    )
    val_input = copy.deepcopy(config.input)
    val_input.batch_size = batch_size
    return Inputs(config, train_files, val_files, val_input, steps)


def resolve_config(config, dataset):
    """A checked copy of `config` for `dataset`: its input mode, and `steps_per_epoch` 0
    turned into one pass over the training pairs (rounded up to whole checkpoint intervals)."""
    config = config.copy_and_resolve_references()
    with config.unlocked():
        config.input = dataset.input_config(config.input, "train")
        train = config.train
        if train.steps_per_epoch == 0:
            records = dataset.records("train")
            if records is None:
                raise BadConfigError(
                    "config.train.steps_per_epoch",
                    "0 (one pass over the data) needs a dataset folder with a "
                    "manifest; with globs, set the number of steps",
                )
            steps = max(1, records // config.input.batch_size)
            train.checkpoint_every = min(train.checkpoint_every, steps)
            train.steps_per_epoch = -(-steps // train.checkpoint_every) * train.checkpoint_every
            logging.info("%d training pairs: %d steps per epoch", records, train.steps_per_epoch)
    check_train_config(config.train)
    return config


class SaveRunConfig(keras.callbacks.Callback):
    """Writes `workdir/config.json` once training has begun, i.e. after the resume state
    loaded into this model: a re-run with another model config is refused (by the backup)
    while the old `config.json` still describes the checkpoints."""

    def __init__(self, config, workdir):
        super().__init__()
        self.config, self.workdir = config, workdir

    def on_train_begin(self, logs=None):
        try:
            RunFolder(self.workdir).write_config(self.config)
        except OSError as error:
            raise BadConfigError(
                self.workdir, f"cannot write the run's config: {error.strerror or error}"
            ) from None


def check_train_config(train):
    """Raises `BadConfigError` for schedule settings `fit` cannot follow."""
    for key in ("steps_per_epoch", "checkpoint_every", "summary_every", "epochs"):
        if train[key] < 1:
            raise BadConfigError(f"config.train.{key}", f"must be >= 1, got {train[key]}")
    if train.steps_per_epoch % train.checkpoint_every:
        raise BadConfigError(
            "config.train.checkpoint_every",
            f"{train.checkpoint_every} does not divide steps_per_epoch {train.steps_per_epoch}",
        )
    warpnet_lr_multiplier(train)
    reconstruction_warmup_epochs(train)
    precision_lib.check_precision(train_precision(train))


def train_precision(train) -> str:
    """`train.precision`; float32 for configs saved before the key existed."""
    return train.get("precision", precision_lib.FLOAT32)


def choose_precision(train, mixed_precision=False) -> precision_lib.Precision:
    """What `train.precision` becomes on this machine (`gfrnet_tf.precision.choose`), or what
    the old `mixed_precision=True` meant when the config asks for nothing else."""
    requested = train_precision(train)
    if not mixed_precision:
        return precision_lib.choose(requested)
    if requested != precision_lib.FLOAT32:
        raise BadConfigError(
            "--mixed_precision", f"conflicts with precision {requested}: use --precision alone"
        )
    return precision_lib.legacy_mixed_precision()


def warpnet_lr_multiplier(train) -> float:
    """`train.warpnet_lr_multiplier`, checked; 1.0 for configs saved before the key existed."""
    return check_multiplier(
        train.get("warpnet_lr_multiplier", 1.0), "config.train.warpnet_lr_multiplier"
    )


def other_identity_guides(model_config) -> bool:
    """Ours(R) (`random_guide`) trains and validates on guides of other people (§4.5)."""
    return model_config.get("variant", "full") == "random_guide"


def reconstruction_warmup_epochs(train) -> int:
    """`train.reconstruction_warmup_epochs`, checked; 0 for configs saved before the key."""
    warmup = train.get("reconstruction_warmup_epochs", 0)
    if not isinstance(warmup, int) or not 0 <= warmup <= train.epochs:
        raise BadConfigError(
            "config.train.reconstruction_warmup_epochs",
            f"must be a whole number from 0 to epochs ({train.epochs}), got {warmup!r}",
        )
    return warmup


def distributed_dataset(strategy, files, input_config, training, other_identity_guides=False):
    """Each replica reads its share, repeated: `fit` counts steps, not passes.

    Full batches only, validation too: its `validation_steps` counts the whole batches of
    one pass, and a partial batch would shift every later pass of the repeated set.
    `other_identity_guides`: `make_dataset`'s, for Ours(R).
    """

    def dataset_fn(context):
        return make_dataset(
            files,
            input_config,
            training,
            input_context=context,
            drop_remainder=True,
            repeat=True,
            other_identity_guides=other_identity_guides,
        )

    return strategy.distribute_datasets_from_function(dataset_fn)


def make_optimizer(train, learning_rate, loss_scaled, group_multiplier=None):
    """§4.2's Adam; with `group_multiplier` a `GroupAdam` (the generator's: WarpNet's rate);
    `loss_scaled` wraps it for float16 (`precision.needs_loss_scaling`)."""
    if group_multiplier is None:
        optimizer = keras.optimizers.Adam(learning_rate, beta_1=train.adam_beta_1)
    else:
        optimizer = GroupAdam(
            learning_rate, beta_1=train.adam_beta_1, group_multiplier=group_multiplier
        )
    return keras.optimizers.LossScaleOptimizer(optimizer) if loss_scaled else optimizer


def build_model(config, strategy, loss_scaled):
    """GFRNet with every variable (both optimizers' too) created under the strategy scope.

    The networks compute in the global Keras policy (`precision.policy_scope`)."""
    size = config.input.image_size
    with strategy.scope():
        model = build_gfrnet(config.model)
        model.compile(
            g_optimizer=make_optimizer(
                config.train,
                config.train.learning_rates[0],
                loss_scaled,
                group_multiplier=warpnet_lr_multiplier(config.train),
            ),
            d_optimizer=make_optimizer(config.train, config.train.learning_rates[0], loss_scaled),
            # WarpNet's pre-training: its own Adam state (see `GFRNet.compile`).
            w_optimizer=make_optimizer(config.train, config.train.learning_rates[0], loss_scaled),
            jit_compile=config.train.jit_compile,
        )
        try:
            model.build_all((size, size))
        except BadConfigError as error:  # a size the networks cannot halve often enough
            raise BadConfigError("config.input.image_size", f"{size}: {error.problem}") from None
    distribute.patch_for_multi_worker(model)
    return model


def fixed_batch(files, input_config, other_identity_guides=False):
    """One deterministic `(inputs, targets)` numpy batch for the TensorBoard image grid
    (read without `input.cache`: one batch would only start a cache and drop it)."""
    input_config = copy.deepcopy(input_config)
    with input_config.unlocked():
        input_config.cache = ""
    batch = next(
        iter(
            make_dataset(
                files, input_config, training=False, other_identity_guides=other_identity_guides
            )
        )
    )
    return tf.nest.map_structure(np.asarray, batch)


def make_callbacks(config, workdir, strategy, grid_files):
    """NaN stop first (it must fire before anything saves), resume state, then chief-only logs
    (the image grid shows the first batch of `grid_files`)."""
    run = RunFolder(workdir)
    checkpoints = str(run.checkpoints)
    callbacks = [
        callbacks_lib.StopOnNonFinite(checkpoints),
        # One backup per task: every worker must restore the same state, and Keras'
        # callback knows nothing of workers.
        callbacks_lib.BackupAndRestore(
            str(run.backup(distribute.task_name(strategy))),
            save_freq="epoch",
            double_checkpoint=True,
            delete_checkpoint=False,
        ),
    ]
    if distribute.is_chief(strategy):
        callbacks += [
            SaveRunConfig(config, workdir),
            callbacks_lib.StepCheckpoint(
                checkpoints,
                keep=config.train.keep_checkpoints,
                settings=trained_settings(config.model),
            ),
            callbacks_lib.TensorBoardLogger(
                str(run.tensorboard),
                config.train.summary_every,
                fixed_batch(grid_files, config.input, other_identity_guides(config.model)),
            ),
        ]
    return callbacks


def run_phases(model, config, train_data, val_data, val_steps, callbacks, verbose=1):
    """§4.2: WarpNet on the flow loss for `warp_pretrain_epochs`, then the full objective
    for `epochs`, of which the first `reconstruction_warmup_epochs` (not in the paper) leave
    the adversarial terms out.

    All phases share one epoch count and one backup, so a resumed run skips a finished
    phase (its `fit` starts at the restored epoch, past its end). With `verbose`, the plan
    is printed in steps and each phase shows one progress bar of them.
    """
    train = config.train
    interval = train.checkpoint_every
    plan = phase_steps(train)
    if verbose:
        print(describe_phases(plan, train.steps_per_epoch), flush=True)
    # The schedule goes first: it acts only at epoch ends, where the backup should hold the
    # new rate and TensorBoard should see it; at batch ends the NaN stop still comes first.
    # One schedule for both generator phases: the warm-up's validation losses count.
    schedule = plateau_schedule(train)
    first_step = 0
    for phase, steps in plan.items():
        model.phase = phase
        progress = callbacks_lib.PhaseProgress(PHASE_TITLES[phase], first_step, steps)
        try:
            model.fit(
                train_data,
                steps_per_epoch=interval,
                initial_epoch=first_step // interval,
                epochs=(first_step + steps) // interval,
                shuffle=False,
                validation_data=val_data,
                validation_steps=val_steps,
                validation_freq=train.steps_per_epoch // interval,
                callbacks=[
                    *([schedule] if phase != "warp" else []),
                    *callbacks,
                    *([progress] if verbose else []),
                ],
                verbose=0,
            )
        finally:
            progress.close()
        first_step += steps


PHASE_TITLES = {
    "warp": "WarpNet pre-training",
    "reconstruction": "reconstruction training",
    "joint": "joint training",
}


def phase_steps(train) -> dict[str, int]:
    """`{phase: steps}` in training order, phases with no steps left out."""
    warmup = reconstruction_warmup_epochs(train)
    epochs = {
        "warp": train.warp_pretrain_epochs,
        "reconstruction": warmup,
        "joint": train.epochs - warmup,
    }
    return {phase: n * train.steps_per_epoch for phase, n in epochs.items() if n}


def describe_phases(plan: dict[str, int], steps_per_epoch: int) -> str:
    """The run's plan in steps, as its progress bars count them."""
    phases = ", then ".join(f"{steps} {PHASE_TITLES[phase]} steps" for phase, steps in plan.items())
    return f"training: {phases} (validation every {steps_per_epoch} steps)"
