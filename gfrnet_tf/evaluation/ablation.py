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
import io
import json
import math
import os
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from gfrnet_tf.configs import load_config
from gfrnet_tf.configs.variants import TABLE1_ROWS, variant_config
from gfrnet_tf.data import make_dataset
from gfrnet_tf.errors import BadConfigError
from gfrnet_tf.evaluation import figure, protocol, report
from gfrnet_tf.evaluation.paper_table1 import PAPER_TABLE1, SUBSETS
from gfrnet_tf.io import save_image
from gfrnet_tf.restoration.restorer import load_restorer
from gfrnet_tf.training.callbacks import latest_checkpoint

BASELINE = "degraded input"
REFERENCE_ROW = "Full"
TABLE_SETTINGS = ("4x", "8x")
# Measures where lower is better; all others (PSNR, SSIM, identity_match) higher is better.
LOWER_IS_BETTER = ("identity_distance", "arcface_deg", "lmd")
# Short-run schedule of the demo (a constant rate: at this length the config's step-down on
# a small validation split falls to its last rate within 1000 steps; measured in the demo).
SHORT_RUN_LEARNING_RATE = 2e-4
SHORT_RUN_PRETRAIN_EPOCHS = 2
EPOCH_STEPS = 250


def with_joint_steps(config, steps: int, epoch_steps: int = EPOCH_STEPS):
    """A copy of `config` trained for about `steps` joint steps (whole data epochs of
    `epoch_steps`, each ending with validation) after `SHORT_RUN_PRETRAIN_EPOCHS` such epochs
    of WarpNet pre-training, at a constant rate, a checkpoint every half epoch."""
    if steps < 1:
        raise BadConfigError("--steps", f"must be >= 1, got {steps}")
    config = config.copy_and_resolve_references()
    epoch_steps = max(1, min(epoch_steps, steps))
    config.train.learning_rates = (SHORT_RUN_LEARNING_RATE,)
    config.train.warp_pretrain_epochs = SHORT_RUN_PRETRAIN_EPOCHS
    config.train.steps_per_epoch = epoch_steps
    config.train.checkpoint_every = epoch_steps // 2 if epoch_steps % 2 == 0 else epoch_steps
    config.train.epochs = -(-steps // epoch_steps)
    return config


def row_config(base_config, row: str, steps: int):
    """The training config of one Table 1 row at the study's budget."""
    return variant_config(with_joint_steps(base_config, steps), row)


def total_steps(config) -> int:
    return (config.train.warp_pretrain_epochs + config.train.epochs) * config.train.steps_per_epoch


def finished(config, workdir) -> bool:
    """True when `workdir` holds a completed run of this config (same model and schedule).

    A workdir trained with another config is refused: its checkpoints would silently stand
    for a different row or budget.
    """
    saved = Path(workdir) / "config.json"
    if not saved.is_file():
        return False
    previous = load_config(str(saved))
    for section in ("model", "train"):
        if _plain(previous[section]) != _plain(config[section]):
            raise BadConfigError(workdir, f"holds a run with another config.{section}; "
                                          "use a new --workdir for another study")
    checkpoint = latest_checkpoint(os.path.join(workdir, "checkpoints"))
    return checkpoint is not None and _step(checkpoint) >= total_steps(config)


@dataclasses.dataclass
class Study:
    """What `run_study` measured: the evaluation and the paired comparisons."""

    evaluation: protocol.Evaluation
    paired: list[dict]
    trained: list[str]  # rows trained (or resumed) by this call; the others were finished


def run_study(base_config, dataset, workdir, steps: int, rows: Sequence[str] = tuple(TABLE1_ROWS),
              *, test_split: str = "test", train: Callable, face_measures=None,
              face_note: str = "", test_protocol: str = protocol.DEFAULT_TEST_PROTOCOL,
              batch_size: int = 8, examples: int = 4, log=print) -> Study:
    """Trains the missing rows with `train(config, workdir, dataset)`, evaluates, writes."""
    rows = list(dict.fromkeys(rows))
    for row in rows:
        if row not in TABLE1_ROWS:
            raise BadConfigError("--variants", f"{row!r} is not a Table 1 row ({', '.join(TABLE1_ROWS)})")
    workdir = Path(workdir)
    trained = []
    for row in rows:
        config = row_config(base_config, row, steps)
        run_dir = workdir / "train" / TABLE1_ROWS[row].folder
        if finished(config, run_dir):
            log(f"{row}: finished in {run_dir}, skipped")
            continue
        log(f"{row}: training in {run_dir} ({total_steps(config)} steps)")
        train(config, str(run_dir), dataset)
        trained.append(row)
    evaluation = evaluate_rows(base_config, dataset, workdir, rows, test_split, face_measures,
                               test_protocol, batch_size, examples)
    paired = paired_comparison(evaluation.per_image, REFERENCE_ROW, rows)
    write_study(workdir, evaluation, paired, rows, {
        "steps": steps, "test_split": test_split, "test_protocol": test_protocol,
        "test_protocol_meaning": protocol.TEST_PROTOCOLS[test_protocol],
        "face_measures": face_note or "identity_distance, identity_match, lmd (dlib)",
        "image_size": base_config.input.image_size, "seed": base_config.train.seed,
    })
    return Study(evaluation, paired, trained)


def evaluate_rows(base_config, dataset, workdir, rows, test_split, face_measures,
                  test_protocol, batch_size, examples) -> protocol.Evaluation:
    """Every row (and the degraded input) on the same seeded test inputs of `test_split`."""
    config = dataset.input_config(base_config.input, test_split)
    config.batch_size = batch_size
    config.deterministic = True
    files = dataset.files(test_split)
    restorers = {BASELINE: protocol.DegradedInput()}
    for row in rows:
        restorers[row] = load_restorer(Path(workdir) / "train" / TABLE1_ROWS[row].folder)

    def make_batches(setting):
        return make_dataset(files, protocol.setting_config(config, setting, test_protocol),
                            training=False)

    return protocol.evaluate(restorers, make_batches, examples, face_measures)


def paired_comparison(per_image: Mapping[str, Mapping[str, np.ndarray]], reference: str,
                      rows: Sequence[str]) -> list[dict]:
    """Per measure and other row: mean of `reference - row` over the same images, its
    standard error, and the share of images where `reference` is better (ties: half)."""
    if reference not in per_image:
        return []
    comparisons = []
    for row in rows:
        if row == reference or row not in per_image:
            continue
        for measure in per_image[reference]:
            if measure not in per_image[row] or measure.startswith(protocol.ALIGNMENT_COLUMNS):
                continue
            difference = per_image[reference][measure] - per_image[row][measure]
            better = -difference if measure.startswith(LOWER_IS_BETTER) else difference
            count = difference.size
            comparisons.append({
                "measure": measure, "versus": row, "images": count,
                "mean_difference": float(difference.mean()),
                "standard_error": float(difference.std(ddof=1) / math.sqrt(count)) if count > 1 else float("nan"),
                "win_rate": float(np.mean(better > 0) + 0.5 * np.mean(better == 0)),
            })
    return comparisons


def table1_rows(evaluation: protocol.Evaluation, rows: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """Table 1's layout as text cells: ours at 4x/8x (PSNR (SSIM), identity, LMD), then the paper's."""
    by_name = {row["model"]: row for row in evaluation.rows}
    face = [m for m in ("identity_distance", "identity_match", "arcface_deg", "lmd")
            if f"{m}_4x" in evaluation.columns]
    header = ["row"]
    for setting in TABLE_SETTINGS:
        header += [f"{setting} PSNR (SSIM)"] + [f"{setting} {m}" for m in face]
    header += [f"paper {subset} {setting}" for subset in SUBSETS for setting in TABLE_SETTINGS]
    lines = []
    for name in [BASELINE, *rows]:
        if name not in by_name:
            continue
        values = by_name[name]
        cells = [name]
        for setting in TABLE_SETTINGS:
            cells.append(f"{values[f'psnr_{setting}']:.2f} ({values[f'ssim_{setting}']:.3f})")
            cells += [report.format_value(m, values[f"{m}_{setting}"]) for m in face]
        paper = PAPER_TABLE1.get(name, {})
        for subset in SUBSETS:
            for setting in TABLE_SETTINGS:
                psnr, ssim = paper.get((subset, setting), (math.nan, math.nan))
                cells.append("—" if math.isnan(psnr) else f"{psnr:.2f} ({ssim:.3f})")
        lines.append(cells)
    return header, lines


PAIRED_COLUMNS = ("measure", "versus", "images", "mean_difference", "standard_error", "win_rate")


def write_study(workdir, evaluation: protocol.Evaluation, paired, rows, settings: dict) -> None:
    workdir = Path(workdir)
    header, lines = table1_rows(evaluation, rows)
    text = io.StringIO()
    text.write(f"Table 1 study: {settings['steps']} joint steps per row, test split "
               f"{settings['test_split']!r}, 4x/8x protocol {settings['test_protocol']!r}; "
               f"{settings['face_measures']}\n\n")
    text.write("| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n")
    text.writelines("| " + " | ".join(cells) + " |\n" for cells in lines)
    if paired:
        text.write(f"\nPaired, {REFERENCE_ROW} minus each row over the same test images "
                   "(win rate: share of images where Full is better):\n\n")
        text.write(report.markdown_table(paired, PAIRED_COLUMNS))
    report.write_text(workdir / "table1.md", text.getvalue())
    report.write_csv(workdir / "table1.csv", evaluation.rows, evaluation.columns)
    report.write_csv(workdir / "paired.csv", paired, PAIRED_COLUMNS)
    report.write_csv(workdir / "per_image.csv", *per_image_table(evaluation.per_image))
    report.write_json(workdir / "study.json", {
        "settings": settings, "rows": evaluation.rows, "paired": paired,
        "failures": evaluation.failures, "protocol_settings": protocol.SETTINGS,
    })
    save_image(workdir / "figure.png", study_figure(evaluation, rows))


def per_image_table(per_image) -> tuple[list[dict], list[str]]:
    """One line per model, setting and image index: `(lines, columns)` for `report.write_csv`."""
    measures = sorted({m.rsplit("_", 1)[0] for values in per_image.values() for m in values
                       if m.rsplit("_", 1)[-1] in protocol.SETTINGS})
    lines = []
    for name, values in per_image.items():
        for setting in protocol.SETTINGS:
            count = len(values.get(f"psnr_{setting}", ()))
            for index in range(count):
                line = {"model": name, "setting": setting, "image": index}
                line.update({m: float(values[f"{m}_{setting}"][index]) if f"{m}_{setting}" in values
                             else float("nan") for m in measures})
                lines.append(line)
    return lines, ["model", "setting", "image", *measures]


def study_figure(evaluation: protocol.Evaluation, rows: Sequence[str]) -> np.ndarray:
    """Bar charts (PSNR at 4x/8x; identity distance and LMD at 4x/8x) above the 4x faces."""
    by_name = {row["model"]: row for row in evaluation.rows}
    names = [name for name in [BASELINE, *rows] if name in by_name]
    labels = ["input" if name == BASELINE else name for name in names]
    charts = [figure.bar_chart("PSNR (dB), higher is better", labels,
                               {f"PSNR {s}": [by_name[n][f"psnr_{s}"] for n in names] for s in TABLE_SETTINGS})]
    for measure, title in (("identity_distance", "dlib identity distance, lower is better"),
                           ("lmd", "LMD (inter-ocular units), lower is better")):
        if f"{measure}_4x" in evaluation.columns:
            charts.append(figure.bar_chart(title, labels, {
                f"{measure} {s}": [by_name[n][f"{measure}_{s}"] for n in names] for s in TABLE_SETTINGS}))
    faces = evaluation.setting_examples.get("4x", {})
    columns = [*names, protocol.GROUND_TRUTH]
    parts = list(charts)
    if all(faces.get(name) for name in columns):
        count = min(len(faces[name]) for name in columns)
        grid_rows = [[faces[name][i] for name in columns] for i in range(count)]
        parts.append(figure.labelled_face_grid(["input 4x", *labels[1:], "truth"], grid_rows))
    return figure.stack(parts)


def _plain(section) -> str:
    return json.dumps(json.loads(section.to_json_best_effort()), sort_keys=True)


def _step(checkpoint: str) -> int:
    return int(Path(checkpoint).name.split("-")[1].split(".")[0])
