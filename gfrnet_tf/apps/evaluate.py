r"""gfrnet-evaluate: the Table 1 protocol for one or more models, one table row each.

    gfrnet-evaluate --model runs/full --model runs/wg --names full,-WG \
        --data DATASET_DIR [--split test] [--output eval/] [--image_size N] \
        [--precision mixed_bfloat16]

`--model` is anything gfrnet-restore takes (a workdir, checkpoint, `.keras`, SavedModel or
`.tflite`); `--data` a dataset folder (its manifest says whether guides are synthesised)
or a glob of test shards (`--synthetic_pose` then says it). Prints a Markdown table (a
first row "degraded input" is the no-model baseline) and writes `results.csv`,
`results.json` and `examples_<name>.png` (I_d | I_g | I_w | restored | I) into
`--output`. PSNR/SSIM are on RGB uint8 [0, 255]; see `gfrnet_tf.evaluation.protocol` for
the settings. A model that cannot be loaded or run, and corrupt records (skipped), are
reported in one line each; the others are still evaluated, and the exit status is 1.
With dlib installed (extra `landmarks`) the table has the restored faces' identity distance
to the ground truth (`identity_distance`, `identity_match`) and landmark distance (`lmd`)
per setting; `--arcface_model FILE` (ONNX or TFLite) adds `arcface_deg`; see
docs/EVALUATION.md. `--precision` is what checkpoints and `.keras` models compute in
(`gfrnet_tf.precision`); exports run as exported. The work is
`gfrnet_tf.evaluation.runner.evaluate_models`.
"""

from __future__ import annotations

from pathlib import Path

from absl import flags

from gfrnet_tf.apps.batch import Failures
from gfrnet_tf.apps.common import (
    define_precision_flag,
    define_test_protocol_flag,
    inference_policy,
    make_run,
)
from gfrnet_tf.configs import load_config
from gfrnet_tf.errors import BadConfigError

MODEL = flags.DEFINE_multi_string(
    "model", None, "Workdir, checkpoint, .keras, SavedModel or .tflite; repeatable."
)
NAMES = flags.DEFINE_list("names", None, "One table name per --model (default: the file names).")
DATA = flags.DEFINE_string("data", None, "Dataset folder, or a glob of test TFRecord shards.")
SPLIT = flags.DEFINE_string("split", "test", "Split of a dataset folder to evaluate on.")
OUTPUT = flags.DEFINE_string("output", "eval", "Folder for results.csv/json and example grids.")
CONFIG = flags.DEFINE_string(
    "config",
    None,
    "A preset, config file or run's config.json whose `input` settings to use "
    "(default: the first model's training settings).",
)
IMAGE_SIZE = flags.DEFINE_integer("image_size", None, "Overrides the models' image size.")
BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Test batch size.")
SYNTHETIC_POSE = flags.DEFINE_bool(
    "synthetic_pose",
    None,
    "With a glob --data: guides made from the targets with a known flow "
    "(measures flow EPE). A dataset folder's manifest says this itself.",
)
EXAMPLES = flags.DEFINE_integer("examples", 4, "Rows in each example grid.")
FACE_MEASURES = flags.DEFINE_bool(
    "face_measures", True, "Identity and landmark distances of the restored faces (needs dlib)."
)
ARCFACE_MODEL = flags.DEFINE_string(
    "arcface_model",
    None,
    "An ArcFace .onnx or .tflite (112x112 RGB, 5-point template, "
    "(x - 127.5) / 127.5) for the arcface_deg column.",
)
TEST_PROTOCOL = define_test_protocol_flag()
PRECISION = define_precision_flag(
    "float32",
    "What checkpoints and .keras models compute in: mixed_bfloat16 where the device has "
    "bf16 natively (else float32, said); exports run as exported.",
)
flags.mark_flags_as_required(["model", "data"])


def model_names(paths) -> list[str]:
    names = NAMES.value or [Path(p.rstrip("/")).stem for p in paths]
    if len(names) != len(paths) or len(set(names)) != len(names):
        raise BadConfigError("--names", f"need {len(paths)} distinct names, got {names}")
    return names


def main(argv):
    from gfrnet_tf.data import PreparedDataset
    from gfrnet_tf.evaluation import report
    from gfrnet_tf.evaluation.identity import face_measures
    from gfrnet_tf.evaluation.runner import evaluate_models

    del argv
    policy = inference_policy(PRECISION.value)
    models = dict(zip(model_names(MODEL.value), MODEL.value))
    dataset = PreparedDataset.open(
        DATA.value, glob_split=SPLIT.value, synthetic_pose=SYNTHETIC_POSE.value
    )
    measures, face_note = None, "face measures off (--noface_measures)"
    if FACE_MEASURES.value:
        measures, face_note = face_measures(ARCFACE_MODEL.value)
    if face_note and FACE_MEASURES.value:
        print(face_note)
    result = evaluate_models(
        models,
        dataset,
        SPLIT.value,
        OUTPUT.value,
        batch_size=BATCH_SIZE.value,
        examples=EXAMPLES.value,
        image_size=IMAGE_SIZE.value,
        input_config=load_config(CONFIG.value).input if CONFIG.value else None,
        face_measures=measures,
        face_note=face_note,
        test_protocol=TEST_PROTOCOL.value,
        keep_going=True,
        policy=policy,
    )
    failures = Failures()
    for error in result.failures:
        failures.add_error(error)
    print(report.markdown_table(result.rows, result.evaluation.columns))
    print(f"results: {result.output / 'results.csv'}, {result.output / 'results.json'}")
    if result.skipped_records:
        failures.add(
            "bad_record", DATA.value, f"{result.skipped_records} corrupt record(s) skipped"
        )
    failures.exit_if_any()


run = make_run(main)

if __name__ == "__main__":
    run()
