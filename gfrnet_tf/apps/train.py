r"""gfrnet-train: trains GFRNet -- WarpNet pre-training, then joint training (§4.2).

    gfrnet-train --config smoke --workdir runs/smoke --data DATASET_DIR \
        [--strategy auto|mirrored|multiworker|none] \
        [--precision float32|mixed_bfloat16|mixed_float16] [--config.train.epochs=3 ...]

`--data` is a dataset folder from `gfrnet-prepare` (its manifest gives the splits, the
pair count and whether guides are synthesised), or a glob of training shards with
`--val_data GLOB` and `--synthetic_pose` for data without a manifest. Re-running the same
command after an interruption (even kill -9) resumes from the last backup. The loop itself
is `gfrnet_tf.training.fit.train`; see there for what WORKDIR holds. `--precision` sets
`config.train.precision` (`gfrnet_tf.precision`: bf16 where the CPU, GPU or TPU has it,
float16 on GPUs only); the old `--mixed_precision` still means float16 on GPUs, ignored
elsewhere.
"""

from __future__ import annotations

from absl import flags

from gfrnet_tf.apps import common
from gfrnet_tf.configs.flags import define_config_flag

CONFIG = define_config_flag()
WORKDIR = flags.DEFINE_string(
    "workdir", None, "Folder for checkpoints, resume state and TensorBoard logs."
)
DATA = flags.DEFINE_string(
    "data", None, "Dataset folder (with manifest.json), or a glob of training shards."
)
VAL_DATA = flags.DEFINE_string(
    "val_data", None, "With a glob --data: glob of the validation shards."
)
SYNTHETIC_POSE = flags.DEFINE_bool(
    "synthetic_pose",
    None,
    "With a glob --data: make each guide from its target by a random warp. "
    "A dataset folder's manifest says this itself.",
)
PRECISION = common.define_precision_flag(
    None,
    "Sets config.train.precision: bf16 where the device has it natively (else float32, "
    "said), float16 on GPUs only. Default: the config's.",
)
MIXED_PRECISION = flags.DEFINE_bool(
    "mixed_precision", False, "Old switch: mixed_float16 on GPUs (ignored on CPU)."
)
common.define_strategy_flag()
flags.mark_flags_as_required(["config", "workdir", "data"])


def main(argv):
    del argv
    from gfrnet_tf.data import PreparedDataset
    from gfrnet_tf.training import fit

    dataset = PreparedDataset.open(
        DATA.value, synthetic_pose=SYNTHETIC_POSE.value, other_patterns={"val": VAL_DATA.value}
    )
    config = CONFIG.value
    if PRECISION.value:
        with config.unlocked():
            config.train.precision = PRECISION.value
    fit.train(
        config,
        WORKDIR.value,
        dataset,
        strategy=common.strategy_from_flags(),
        mixed_precision=MIXED_PRECISION.value,
    )


run = common.make_run(main)

if __name__ == "__main__":
    run()
