"""gfrnet-evaluate: the Table 1 protocol for one or more models, one table row each.

    gfrnet-evaluate --model runs/full/model.keras --model runs/wg/model.keras \
        --names full,-WG --data 'data/test-*.tfrecord' --output eval/ \
        [--config runs/full/config.json] [--image_size 64] [--synthetic_pose]

Prints a Markdown table (a first row "degraded input" is the no-model baseline) and
writes `results.csv`, `results.json` and `examples_<name>.png` (I_d | I_g | I_w |
restored | I) into `--output`. PSNR/SSIM are on RGB uint8 [0, 255]; see
`gfrnet_tf.evaluation.metrics` and `gfrnet_tf.evaluation.protocol` for the settings.
A model that cannot be loaded or run, and corrupt records (skipped), are reported in one
line each; the others are still evaluated, and the exit status is 1.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

from absl import flags

from gfrnet_tf.apps.batch import Failures
from gfrnet_tf.apps.common import make_run
from gfrnet_tf.configs import load_config
from gfrnet_tf.data import SkippedRecords, default_input_config, make_dataset
from gfrnet_tf.data.degrade import PARAMETERS
from gfrnet_tf.data.pipeline import list_shards
from gfrnet_tf.errors import BadConfigError, BadModelFileError, GFRNetError
from gfrnet_tf.evaluation import protocol, report
from gfrnet_tf.restoration.restorer import load_restorer

MODEL = flags.DEFINE_multi_string("model", None, "Checkpoint/.keras, SavedModel dir or .tflite; repeatable.")
NAMES = flags.DEFINE_list("names", None, "One table name per --model (default: the file names).")
DATA = flags.DEFINE_multi_string("data", None, "Glob of test TFRecord shards; repeatable.")
OUTPUT = flags.DEFINE_string("output", None, "Folder for results.csv/json and example grids.")
CONFIG = flags.DEFINE_string("config", None, "configs/*.py or a run's config.json: its `input` settings.")
IMAGE_SIZE = flags.DEFINE_integer("image_size", None, "Overrides input.image_size.")
BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Test batch size.")
SYNTHETIC_POSE = flags.DEFINE_bool(
    "synthetic_pose", None, "Guides made from the targets with a known flow (measures flow EPE)."
)
EXAMPLES = flags.DEFINE_integer("examples", 4, "Rows in each example grid.")
flags.mark_flags_as_required(["model", "data", "output"])

BASELINE = "degraded input"


def input_config():
    """The test-time `config.input`: the run's settings with the flags applied."""
    config = load_config(CONFIG.value).input if CONFIG.value else default_input_config()
    config = copy.deepcopy(config)
    config.batch_size = BATCH_SIZE.value
    config.skip_corrupt = True  # a bad record is counted and reported, not fatal
    config.deterministic = True  # the same examples in the grids, whatever the thread timing
    if IMAGE_SIZE.value is not None:
        config.image_size = IMAGE_SIZE.value
    if SYNTHETIC_POSE.value is not None:
        config.synthetic_pose.enabled = SYNTHETIC_POSE.value
    return config


def model_names(paths) -> list[str]:
    names = NAMES.value or [Path(p.rstrip("/")).stem for p in paths]
    if len(names) != len(paths) or len(set(names)) != len(names):
        raise BadConfigError("--names", f"need {len(paths)} distinct names, got {names}")
    return names


def file_name(name: str) -> str:
    """A model name made safe as part of a file name (no folders, no dot files)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).lstrip(".") or "model"


def main(argv):
    del argv
    config = input_config()
    names = model_names(MODEL.value)
    list_shards(DATA.value)  # no matching shard: fail now, before loading any model
    output = Path(OUTPUT.value)
    output.mkdir(parents=True, exist_ok=True)
    counters = []  # one per pass over the data: every pass meets the same bad records

    def make_batches(setting):
        counters.append(SkippedRecords())
        return make_dataset(
            DATA.value, protocol.setting_config(config, setting), training=False, skipped=counters[-1]
        )

    failures = Failures()
    paths = dict(zip(names, MODEL.value))
    restorers = {BASELINE: protocol.DegradedInput()}
    for name, path in paths.items():
        try:
            restorers[name] = load_restorer(path)
        except GFRNetError as error:
            failures.add_error(error)
    evaluation = protocol.evaluate(restorers, make_batches, EXAMPLES.value)
    for name, problem in evaluation.failures.items():
        failures.add(BadModelFileError.reason, paths[name], problem)
    for name, rows in evaluation.examples.items():
        if name != BASELINE and rows:
            report.write_example_grid(output / f"examples_{file_name(name)}.png", rows)

    skipped = max((counter.skipped for counter in counters), default=0)
    columns = list(protocol.COLUMNS)
    report.write_csv(output / "results.csv", evaluation.rows, columns)
    report.write_json(output / "results.json", {
        "rows": evaluation.rows,
        "colour_space": "RGB, uint8 [0, 255] (model outputs rounded)",
        "settings": protocol.SETTINGS,
        "degradation_sets": {name: list(config.degradation[name]) for name in PARAMETERS},
        "landmark_error": "mean point distance / guide inter-ocular distance (points 37, 46)",
        "image_size": config.image_size,
        "synthetic_pose": bool(config.synthetic_pose.enabled),
        "skipped_records": skipped,
    })
    print(report.markdown_table(evaluation.rows, columns))
    print(f"results: {output / 'results.csv'}, {output / 'results.json'}")
    if skipped:
        failures.add("bad_record", ", ".join(DATA.value), f"{skipped} corrupt record(s) skipped")
    failures.exit_if_any()


run = make_run(main)

if __name__ == "__main__":
    run()
