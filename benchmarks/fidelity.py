r"""The measured rows of docs/FIDELITY.md: loss reduction, flow parameterisation and the
test-time mode, at the demo's data and budget.

    python -m benchmarks.fidelity --workdir runs/fidelity [--steps 5000] \
        [--runs project,flow_absolute]
    python -m benchmarks.fidelity --workdir runs/symmetry --rows symmetry --steps 250
    python -m benchmarks.fidelity --workdir runs/paper_warp --rows paper_warp --steps 1000 \
        --pretrain_epochs 8
    python -m benchmarks.fidelity --workdir runs/switches --rows switches --steps 2000

Writes the bundled sample dataset (synthetic poses of one photo; "test" = unseen warps
and degradations of the same face) and trains one `smoke` run per training switch
(`gfrnet_tf.training.fit.train`) on the same data, budget and seed (re-running resumes or
skips finished runs). Then evaluates on the test split in one table: every run as trained (BatchNorm
moving averages, no dropout at inference), and the baseline run again in the official
test script's mode (`test_time_norm=per_image`, with and without `test_time_dropout`),
which needs no retraining: the mode only changes inference. Same-run comparison only.
`--rows symmetry` trains the flow symmetry rows instead (the term's weight 0, 1, 100);
`--rows paper_warp` the `paper` preset's training readings together, and each remedy for
the warp they lose in the joint phase; `--rows switches` every other switch of
docs/FIDELITY.md that changes training, one at a time against the same baseline.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from absl import app, flags

from gfrnet_tf.configs import load_config
from gfrnet_tf.configs.budget import short_run_schedule
from gfrnet_tf.configs.official import official_degradation_sets
from gfrnet_tf.evaluation.runner import evaluate_models
from gfrnet_tf.runs import RunFolder
from gfrnet_tf.sample import write_sample_dataset
from gfrnet_tf.training import fit

WORKDIR = flags.DEFINE_string("workdir", "runs/fidelity", "Folder for data, runs and the table.")
STEPS = flags.DEFINE_integer("steps", 5000, "Joint-training steps per run.")
EVALUATE_ONLY = flags.DEFINE_bool(
    "evaluate_only", False, "Skip training: evaluate the runs in --workdir."
)
SEED = flags.DEFINE_integer("seed", 0, "config.train.seed of every run.")
ROWS = flags.DEFINE_enum(
    "rows",
    "readings",
    ["readings", "symmetry", "paper_warp", "switches"],
    "readings: loss reduction, flow mode, test-time mode; symmetry: the flow symmetry weight; "
    "paper_warp: every paper training reading, and what keeps its warp; switches: the other "
    "training switches, one at a time.",
)
PRETRAIN_EPOCHS = flags.DEFINE_integer(
    "pretrain_epochs", None, "WarpNet pre-training epochs of 250 steps (default: the demo's)."
)
RUNS = flags.DEFINE_list("runs", [], "Train and evaluate only these runs of --rows (default: all).")

BASELINE = "project"
# Run name -> the config values ("section.key") it changes against the smoke preset (the
# project's readings).
TRAINING_SWITCHES = {
    BASELINE: {},
    "flow_absolute": {"model.flow_mode": "absolute"},
    "reduction_official": {"model.loss_reduction": "official"},
    "reduction_paper": {"model.loss_reduction": "paper"},
    "warpnet_lr_0.1": {"train.warpnet_lr_multiplier": 0.1},
    "warpnet_frozen": {"train.warpnet_lr_multiplier": 0.0},
}
# The flow symmetry term (not in the paper; 1 = the PyTorch reimplementation's weight).
SYMMETRY_SWITCHES = {
    BASELINE: {},
    "symmetry_1": {"model.loss_weights.flow_symmetry": 1.0},
    "symmetry_100": {"model.loss_weights.flow_symmetry": 100.0},
}
# The `paper` preset's training readings at the smoke sizes, and one change to each.
PAPER_TRAINING = {
    "model.flow_mode": "absolute",
    "model.loss_reduction": "paper",
    "model.tv_target": "flow",
    "model.local_margin": 0.0,
    "model.warpnet_init_stddev": 0.04,
}
PAPER_WARP_SWITCHES = {
    BASELINE: {},
    "paper_training": PAPER_TRAINING,
    "paper_training_means": {**PAPER_TRAINING, "model.loss_reduction": "project"},
    "paper_training_detached": {**PAPER_TRAINING, "model.detach_warped_guide": True},
    "paper_training_warpnet_lr_0.1": {**PAPER_TRAINING, "train.warpnet_lr_multiplier": 0.1},
}
# Every other switch that changes training, one at a time: the official code's or the
# paper's literal value against the project's (docs/FIDELITY.md, "The table").
OTHER_SWITCHES = {
    BASELINE: {},
    "image_range_unit": {"model.image_range": "unit"},
    "innermost_relu": {"model.innermost_activation": "relu"},
    "skip_relu": {"model.skip_activation": "relu"},
    "blocks_literal": {
        "model.encoder_activation": "relu",
        "model.innermost_activation": "relu",
        "model.innermost_norm": True,
    },
    "generator_minimax": {"model.generator_loss": "minimax"},
    "d_loss_halved": {"model.d_loss_halved": True},
    "no_flip": {"input.flip": False},
    "warpnet_init_0.04": {"model.warpnet_init_stddev": 0.04},
    "no_dropout": {"model.dropout": 0.0},
    "local_margin_0": {"model.local_margin": 0.0},
    "part_discriminators": {"model.part_discriminators": True},
    "official_degradation": {
        f"input.degradation.{name}": values for name, values in official_degradation_sets().items()
    },
}
ROW_SETS = {
    "readings": TRAINING_SWITCHES,
    "symmetry": SYMMETRY_SWITCHES,
    "paper_warp": PAPER_WARP_SWITCHES,
    "switches": OTHER_SWITCHES,
}
# Inference-only variants of the baseline run: name -> config.model values.
TEST_MODES = {
    "project+per_image": {"test_time_norm": "per_image"},
    "project+per_image+dropout": {"test_time_norm": "per_image", "test_time_dropout": True},
}


def with_test_mode(run: Path, folder: Path, model_values: dict) -> Path:
    """A workdir that shares `run`'s checkpoints and differs in its config's test-time mode."""
    source, variant = RunFolder(run), RunFolder(folder)
    config = source.read_config()
    config.model.update(model_values)
    variant.write_config(config)
    if not variant.checkpoints.exists():
        os.symlink(source.checkpoints.resolve(), variant.checkpoints)
    return folder


def main(argv):
    del argv
    workdir = Path(WORKDIR.value)
    dataset = write_sample_dataset(workdir / "data", load_config("smoke").input.image_size)
    switches = ROW_SETS[ROWS.value]
    runs = RUNS.value or list(switches)
    unknown = sorted(set(runs) - set(switches))
    if unknown:
        raise app.UsageError(
            f"--runs: no such {ROWS.value} run {', '.join(unknown)}; known: {', '.join(switches)}"
        )
    if not EVALUATE_ONLY.value:
        for name in runs:
            print(f"== train {name}", flush=True)
            config = load_config("smoke")
            config.train.update(short_run_schedule(STEPS.value))
            config.train.seed = SEED.value
            if PRETRAIN_EPOCHS.value is not None:
                config.train.warp_pretrain_epochs = PRETRAIN_EPOCHS.value
            config.update_from_flattened_dict(
                switches[name]
            )  # "section.key", nested ConfigDicts too
            fit.train(config, workdir / name, dataset)
    print("== evaluate on the test split", flush=True)
    models = {name: workdir / name for name in runs}
    if ROWS.value == "readings" and BASELINE in runs:
        for name, values in TEST_MODES.items():
            models[name] = with_test_mode(workdir / BASELINE, workdir / name, values)
    result = evaluate_models(models, dataset, "test", workdir / "eval", keep_going=True)
    print(json.dumps(result.rows, indent=1))
    for error in result.failures:
        print(f"error: {error}")


if __name__ == "__main__":
    app.run(main)
