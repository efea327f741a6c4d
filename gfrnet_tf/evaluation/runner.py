"""Evaluation as a library call: models x one split of a dataset -> the Table 1 files.

    from gfrnet_tf.data import PreparedDataset
    from gfrnet_tf.evaluation.runner import evaluate_models

    result = evaluate_models({"full": "runs/full", "-WG": "runs/wg"},
                             PreparedDataset("data/"), "test", "eval/")

writes `results.csv`, `results.json` and `examples_<name>.png` (I_d | I_g | I_w |
restored | I) into the output folder; `gfrnet-evaluate` is a thin wrapper around it. The
test-time input settings are those the (first) model was trained with, at its image size,
with synthetic pose as the dataset's manifest says. A model that cannot be loaded or run
raises its `GFRNetError`, so a library caller cannot miss it; with `keep_going=True` the
others are still evaluated and the failures come back in `result.failures` (what
gfrnet-evaluate prints, exiting 1). Corrupt records are skipped and counted.
With `face_measures` (`evaluation.identity.face_measures()`) the table gains the identity
and landmark distances of the restored faces; `test_protocol` picks what the 4x/8x
settings draw (`protocol.TEST_PROTOCOLS`).
"""

from __future__ import annotations

import copy
import dataclasses
import re
from pathlib import Path

from gfrnet_tf.data import SkippedRecords, default_input_config, make_dataset
from gfrnet_tf.data.degrade import PARAMETERS
from gfrnet_tf.errors import BadConfigError, BadModelFileError, GFRNetError
from gfrnet_tf.evaluation import protocol, report
from gfrnet_tf.io.paths import make_output_dir
from gfrnet_tf.precision import FLOAT32
from gfrnet_tf.restoration.restorer import load_restorer

BASELINE = "degraded input"


@dataclasses.dataclass
class EvaluationResult:
    """The table rows (baseline first), the models that failed, and what was skipped."""

    rows: list[dict]
    failures: list[GFRNetError]
    skipped_records: int
    output: Path
    image_size: int
    evaluation: protocol.Evaluation  # per-image values and faces, for studies


def evaluate_models(
    models: dict,
    dataset,
    split: str = "test",
    output="eval",
    *,
    batch_size: int = 8,
    examples: int = 4,
    image_size: int | None = None,
    input_config=None,
    face_measures=None,
    face_note: str = "",
    test_protocol: str = protocol.DEFAULT_TEST_PROTOCOL,
    keep_going: bool = False,
    policy: str = FLOAT32,
) -> EvaluationResult:
    """Evaluates `models` (table name -> anything `load_restorer` takes) on `split`.

    Keras models compute under the dtype `policy` (`gfrnet_tf.precision`).

    `input_config` (a `config.input`) and `image_size` override what the models recorded;
    `face_note` says in results.json why face measures are missing, if they are. A model
    that cannot be loaded (at once) or run (before any file is written) raises, unless
    `keep_going`: then it is left out of the table and listed in `failures`.
    """
    files = dataset.files(split)  # a missing split fails now, before any model loads
    failures, restorers = [], {}
    for name, path in models.items():
        try:
            restorers[name] = load_restorer(path, policy)
        except GFRNetError as error:
            if not keep_going:
                raise
            failures.append(error)
    config = evaluation_input_config(restorers, input_config, image_size, batch_size)
    config = dataset.input_config(config, split)
    output = Path(make_output_dir(output))
    counters = []  # one per pass over the data: every pass meets the same bad records

    def make_batches(setting):
        counters.append(SkippedRecords())
        return make_dataset(
            files,
            protocol.setting_config(config, setting, test_protocol),
            training=False,
            skipped=counters[-1],
        )

    evaluation = protocol.evaluate(
        {BASELINE: protocol.DegradedInput(), **restorers}, make_batches, examples, face_measures
    )
    for name, problem in evaluation.failures.items():
        failures.append(BadModelFileError(models[name], problem))
    if failures and not keep_going:
        raise failures[0]
    for name, rows in evaluation.examples.items():
        if name != BASELINE and rows:
            report.write_example_grid(output / f"examples_{file_name(name)}.png", rows)
    skipped = max((counter.skipped for counter in counters), default=0)
    report.write_csv(output / "results.csv", evaluation.rows, evaluation.columns)
    report.write_json(
        output / "results.json",
        {
            "rows": evaluation.rows,
            "data": dataset.source,
            "split": split,
            "colour_space": "RGB, uint8 [0, 255] (model outputs rounded)",
            "settings": protocol.SETTINGS,
            "test_protocol": {test_protocol: protocol.TEST_PROTOCOLS[test_protocol]},
            "face_measures": face_note
            or "dlib identity distance / match (< 0.6), LMD: see gfrnet_tf.evaluation.identity",
            "degradation_sets": {name: list(config.degradation[name]) for name in PARAMETERS},
            "landmark_error": "mean point distance / guide inter-ocular distance (points 37, 46)",
            "image_size": config.image_size,
            "synthetic_pose": bool(config.synthetic_pose.enabled),
            "skipped_records": skipped,
        },
    )
    return EvaluationResult(
        evaluation.rows, failures, skipped, output, config.image_size, evaluation
    )


def evaluation_input_config(restorers: dict, input_config, image_size, batch_size):
    """The test-time `config.input`: given, or the first model's training settings, at the
    models' common image size; deterministic, with corrupt records skipped."""
    if input_config is None:
        configs = [r.config.input for r in restorers.values() if r.config is not None]
        input_config = configs[0] if configs else default_input_config()
    config = copy.deepcopy(input_config)
    sizes = {r.image_size for r in restorers.values() if r.image_size is not None}
    if image_size is None and len(sizes) > 1:
        raise BadConfigError(
            "--model",
            f"the models were made for different sizes {sorted(sizes)}: "
            "evaluate them separately, or give one --image_size",
        )
    config.image_size = image_size or (sizes.pop() if sizes else config.image_size)
    config.batch_size = batch_size
    config.skip_corrupt = True  # a bad record is counted and reported, not fatal
    config.deterministic = True  # the same examples in the grids, whatever the thread timing
    with config.unlocked():  # a training run's cache would grow test-split files beside it
        config.cache = config.data_service = ""
    return config


def file_name(name: str) -> str:
    """A model name made safe as part of a file name (no folders, no dot files)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).lstrip(".") or "model"
