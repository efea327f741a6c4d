"""The §4.5 ablation study as one call: train Table 1's rows alike, test them alike, compare.

`run_study` trains every requested row (`configs.variants.TABLE1_ROWS`) from the same base
config, data, joint-step budget and seed into `WORKDIR/train/<row folder>`, skipping rows
whose run is finished and resuming an interrupted one (the trainer's own resume), then
evaluates all of them on the same seeded test inputs (`protocol`) with the identity and
landmark measures (`identity`), and writes into WORKDIR:

- `table1.md`: Table 1's layout (4x and 8x, PSNR (SSIM), identity and LMD) with the
  paper's numbers for the same rows beside ours, and the paired comparison;
- `table1.csv` / `study.json`: every column at full precision, plus the settings;
- `paired.csv`: per measure, Full minus each other row over the same images: mean
  difference, its standard error and Full's win rate (a higher-is-better measure wins
  when larger, a distance when smaller);
- `per_image.csv`: one line per row, setting and test image;
- `figure.png`: bar charts of the rows, and the same test faces restored by every row.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable, Sequence

from gfrnet_tf.ablation.report import REFERENCE_ROW, paired_comparison, write_study
from gfrnet_tf.configs.budget import short_run_schedule
from gfrnet_tf.configs.variants import TABLE1_ROWS, variant_config
from gfrnet_tf.data.other_identity import first_two_people
from gfrnet_tf.errors import BadConfigError
from gfrnet_tf.evaluation import protocol, runner
from gfrnet_tf.io.paths import make_output_dir
from gfrnet_tf.runs import RunFolder, checkpoint_step
from gfrnet_tf.training import fit
from gfrnet_tf.training.shards import check_shards


def row_config(base_config, row: str, steps: int):
    """The training config of one Table 1 row at the study's budget (`short_run_schedule`)."""
    config = base_config.copy_and_resolve_references()
    config.train.update(short_run_schedule(steps))
    return variant_config(config, row)


def check_other_people(dataset):
    """Raises `BadConfigError` unless the training split names at least two people (R's)."""
    try:
        first_two_people(dataset.files("train"))
    except BadConfigError as error:
        raise BadConfigError(
            "--variants", f"R: {error.problem}; leave R out for this data"
        ) from None


def total_steps(config) -> int:
    return (config.train.warp_pretrain_epochs + config.train.epochs) * config.train.steps_per_epoch


def finished(config, workdir) -> bool:
    """True when `workdir` holds a completed run of this config (same model and schedule).

    A workdir trained with another config is refused: its checkpoints would silently stand
    for a different row or budget.
    """
    run = RunFolder(workdir)
    if not run.config_file.is_file():
        return False
    previous = run.read_config()
    for section in ("model", "train"):
        if _plain(previous[section]) != _plain(config[section]):
            raise BadConfigError(
                workdir,
                f"holds a run with another config.{section}; use a new --workdir for another study",
            )
    checkpoint = run.latest_checkpoint()
    return checkpoint is not None and checkpoint_step(checkpoint) >= total_steps(config)


@dataclasses.dataclass
class Study:
    """What `run_study` measured: the evaluation and the paired comparisons."""

    evaluation: protocol.Evaluation
    paired: list[dict]
    trained: list[str]  # rows trained (or resumed) by this call; the others were finished


def run_study(
    base_config,
    dataset,
    workdir,
    steps: int,
    rows: Sequence[str] = tuple(TABLE1_ROWS),
    *,
    test_split: str = "test",
    train: Callable = fit.train,
    face_measures=None,
    face_note: str = "",
    test_protocol: str = protocol.DEFAULT_TEST_PROTOCOL,
    batch_size: int = 8,
    examples: int = 4,
    log=print,
) -> Study:
    """Trains the missing rows with `train(config, workdir, dataset)`, evaluates, writes.

    `face_measures` / `face_note`: as `runner.evaluate_models` takes them. A row that
    cannot be evaluated is an error: a study with a hole is not Table 1. Every input the
    study will read is checked first (`check_inputs`), before any row trains.
    """
    rows = list(dict.fromkeys(rows))
    for row in rows:
        if row not in TABLE1_ROWS:
            raise BadConfigError(
                "--variants", f"{row!r} is not a Table 1 row ({', '.join(TABLE1_ROWS)})"
            )
    workdir = Path(make_output_dir(workdir))
    configs = {row: row_config(base_config, row, steps) for row in rows}
    check_inputs(configs.values(), dataset, test_split)
    if "R" in rows:  # before any row trains: R needs guides of other people
        check_other_people(dataset)
    trained = []
    for row, config in configs.items():
        run_dir = workdir / "train" / TABLE1_ROWS[row].folder
        if finished(config, run_dir):
            log(f"{row}: finished in {run_dir}, skipped")
            continue
        log(f"{row}: training in {run_dir} ({total_steps(config)} steps)")
        train(config, str(run_dir), dataset)
        if not finished(config, run_dir):  # e.g. a resume state from another schedule
            raise BadConfigError(
                run_dir, f"training ended before step {total_steps(config)}; use a new --workdir"
            )
        trained.append(row)
    evaluation = evaluate_rows(
        dataset,
        workdir,
        rows,
        test_split,
        face_measures,
        face_note,
        test_protocol,
        batch_size,
        examples,
    )
    paired = paired_comparison(evaluation.per_image, REFERENCE_ROW, rows)
    write_study(
        workdir,
        evaluation,
        paired,
        rows,
        {
            "steps": steps,
            "test_split": test_split,
            "test_protocol": test_protocol,
            "test_protocol_meaning": protocol.TEST_PROTOCOLS[test_protocol],
            "face_measures": face_note or "identity_distance, identity_match, lmd (dlib)",
            "image_size": base_config.input.image_size,
            "seed": base_config.train.seed,
        },
    )
    return Study(evaluation, paired, trained)


def check_inputs(configs, dataset, test_split: str) -> None:
    """What training each row and evaluating them all will read, checked now: a missing or
    empty test split otherwise surfaces only after the first row trained (hours at the
    default budget). Every row's training inputs (`fit.check_inputs`: its shards, its
    validation batch), then every record of the test split."""
    for config in configs:
        fit.check_inputs(config, dataset)
    if not dataset.has(test_split) or dataset.records(test_split) == 0:
        raise BadConfigError(
            dataset.source,
            f"no test pairs in split {test_split!r}: the study is evaluated on them; prepare "
            "the data with a larger --test-fraction, or name another split (--test_split)",
        )
    check_shards(dataset.files(test_split))


def evaluate_rows(
    dataset,
    workdir,
    rows,
    test_split,
    face_measures,
    face_note,
    test_protocol,
    batch_size,
    examples,
) -> protocol.Evaluation:
    """Every row (and the degraded input) on the same seeded test inputs of `test_split`;
    `runner.evaluate_models` also writes its files into `WORKDIR/eval`. A row that cannot
    be evaluated raises: a study with a hole is not Table 1."""
    models = {row: str(Path(workdir) / "train" / TABLE1_ROWS[row].folder) for row in rows}
    result = runner.evaluate_models(
        models,
        dataset,
        test_split,
        Path(workdir) / "eval",
        batch_size=batch_size,
        examples=examples,
        face_measures=face_measures,
        face_note=face_note,
        test_protocol=test_protocol,
    )
    return result.evaluation


def _plain(section) -> str:
    return json.dumps(json.loads(section.to_json_best_effort()), sort_keys=True)
