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
from gfrnet_tf.configs.budget import short_run_schedule
from gfrnet_tf.configs.variants import TABLE1_ROWS, variant_config
from gfrnet_tf.errors import BadConfigError
from gfrnet_tf.evaluation import figure, protocol, report, runner
from gfrnet_tf.evaluation.paper_table1 import PAPER_TABLE1, SUBSETS
from gfrnet_tf.io import save_image
from gfrnet_tf.training import fit
from gfrnet_tf.training.callbacks import latest_checkpoint

BASELINE = runner.BASELINE
REFERENCE_ROW = "Full"
TABLE_SETTINGS = ("4x", "8x")
# Measures where lower is better; all others (PSNR, SSIM, identity_match) higher is better.
LOWER_IS_BETTER = ("identity_distance", "arcface_deg", "lmd")


def row_config(base_config, row: str, steps: int):
    """The training config of one Table 1 row at the study's budget (`short_run_schedule`)."""
    config = base_config.copy_and_resolve_references()
    config.train.update(short_run_schedule(steps))
    return variant_config(config, row)


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
              *, test_split: str = "test", train: Callable = fit.train, face_measures=None,
              face_note: str = "", test_protocol: str = protocol.DEFAULT_TEST_PROTOCOL,
              batch_size: int = 8, examples: int = 4, log=print) -> Study:
    """Trains the missing rows with `train(config, workdir, dataset)`, evaluates, writes.

    `face_measures` / `face_note`: as `runner.evaluate_models` takes them. A row that
    cannot be evaluated is an error: a study with a hole is not Table 1.
    """
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
        if not finished(config, run_dir):  # e.g. a resume state from another schedule
            raise BadConfigError(run_dir, f"training ended before step {total_steps(config)}; "
                                          "use a new --workdir")
        trained.append(row)
    evaluation = evaluate_rows(dataset, workdir, rows, test_split, face_measures, face_note,
                               test_protocol, batch_size, examples)
    paired = paired_comparison(evaluation.per_image, REFERENCE_ROW, rows)
    write_study(workdir, evaluation, paired, rows, {
        "steps": steps, "test_split": test_split, "test_protocol": test_protocol,
        "test_protocol_meaning": protocol.TEST_PROTOCOLS[test_protocol],
        "face_measures": face_note or "identity_distance, identity_match, lmd (dlib)",
        "image_size": base_config.input.image_size, "seed": base_config.train.seed,
    })
    return Study(evaluation, paired, trained)


def evaluate_rows(dataset, workdir, rows, test_split, face_measures, face_note,
                  test_protocol, batch_size, examples) -> protocol.Evaluation:
    """Every row (and the degraded input) on the same seeded test inputs of `test_split`;
    `runner.evaluate_models` also writes its files into `WORKDIR/eval`."""
    models = {row: str(Path(workdir) / "train" / TABLE1_ROWS[row].folder) for row in rows}
    result = runner.evaluate_models(
        models, dataset, test_split, Path(workdir) / "eval", batch_size=batch_size,
        examples=examples, face_measures=face_measures, face_note=face_note,
        test_protocol=test_protocol)
    if result.failures:
        raise result.failures[0]
    return result.evaluation


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
        for measure in paired_measures(per_image[reference]):
            if measure not in per_image[row]:
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


def paired_measures(values: Mapping[str, np.ndarray]) -> list[str]:
    """The measures worth pairing: Table 1's settings, continuous measures (not the 0/1 match)."""
    return [f"{m}_{s}" for s in TABLE_SETTINGS for m in ("psnr", "ssim", "identity_distance", "arcface_deg", "lmd")
            if f"{m}_{s}" in values]


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
    parts = [figure.stack(charts, axis=1)]
    if all(faces.get(name) for name in columns):
        count = min(len(faces[name]) for name in columns)
        grid_rows = [[faces[name][i] for name in columns] for i in range(count)]
        parts.append(figure.labelled_face_grid(["input 4x", *labels[1:], "truth"], grid_rows))
    return figure.stack(parts)


def _plain(section) -> str:
    return json.dumps(json.loads(section.to_json_best_effort()), sort_keys=True)


def _step(checkpoint: str) -> int:
    return int(Path(checkpoint).name.split("-")[1].split(".")[0])
