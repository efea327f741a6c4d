"""The study's files: Table 1 beside the paper's numbers, Full paired against each row.

Written into the study's folder by `study.run_study` (docs/EVALUATION.md):
`table1.md`, `table1.csv`, `paired.csv`, `per_image.csv`, `study.json`, `figure.png`.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from gfrnet_tf.ablation.figure import study_figure
from gfrnet_tf.ablation.paper_table1 import PAPER_TABLE1, SUBSETS
from gfrnet_tf.evaluation import protocol, report, runner
from gfrnet_tf.io import save_image

BASELINE = runner.BASELINE
REFERENCE_ROW = "Full"
TABLE_SETTINGS = ("4x", "8x")
# Measures where lower is better; all others (PSNR, SSIM, identity_match) higher is better.
LOWER_IS_BETTER = ("identity_distance", "arcface_deg", "lmd")


def paired_comparison(
    per_image: Mapping[str, Mapping[str, np.ndarray]], reference: str, rows: Sequence[str]
) -> list[dict]:
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
            comparisons.append(
                {
                    "measure": measure,
                    "versus": row,
                    "images": count,
                    "mean_difference": float(difference.mean()),
                    "standard_error": float(difference.std(ddof=1) / math.sqrt(count))
                    if count > 1
                    else float("nan"),
                    "win_rate": float(np.mean(better > 0) + 0.5 * np.mean(better == 0)),
                }
            )
    return comparisons


def paired_measures(values: Mapping[str, np.ndarray]) -> list[str]:
    """The measures worth pairing: Table 1's settings, continuous measures (not the 0/1 match)."""
    return [
        f"{m}_{s}"
        for s in TABLE_SETTINGS
        for m in ("psnr", "ssim", "identity_distance", "arcface_deg", "lmd")
        if f"{m}_{s}" in values
    ]


def table1_rows(
    evaluation: protocol.Evaluation, rows: Sequence[str]
) -> tuple[list[str], list[list[str]]]:
    """Table 1's layout as text cells: ours at 4x/8x (PSNR (SSIM), identity, LMD), then the
    paper's."""
    by_name = {row["model"]: row for row in evaluation.rows}
    face = [
        m
        for m in ("identity_distance", "identity_match", "arcface_deg", "lmd")
        if f"{m}_4x" in evaluation.columns
    ]
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
    text.write(
        f"Table 1 study: {settings['steps']} joint steps per row, test split "
        f"{settings['test_split']!r}, 4x/8x protocol {settings['test_protocol']!r}; "
        f"{settings['face_measures']}\n\n"
    )
    text.write("| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n")
    text.writelines("| " + " | ".join(cells) + " |\n" for cells in lines)
    if paired:
        text.write(
            f"\nPaired, {REFERENCE_ROW} minus each row over the same test images "
            "(win rate: share of images where Full is better):\n\n"
        )
        text.write(report.markdown_table(paired, PAIRED_COLUMNS))
    report.write_text(workdir / "table1.md", text.getvalue())
    report.write_csv(workdir / "table1.csv", evaluation.rows, evaluation.columns)
    report.write_csv(workdir / "paired.csv", paired, PAIRED_COLUMNS)
    report.write_csv(workdir / "per_image.csv", *per_image_table(evaluation.per_image))
    report.write_json(
        workdir / "study.json",
        {
            "settings": settings,
            "rows": evaluation.rows,
            "paired": paired,
            "failures": evaluation.failures,
            "protocol_settings": protocol.SETTINGS,
        },
    )
    save_image(workdir / "figure.png", study_figure(evaluation, rows, TABLE_SETTINGS))


def per_image_table(per_image) -> tuple[list[dict], list[str]]:
    """One line per model, setting and image index: `(lines, columns)` for `report.write_csv`."""
    measures = sorted(
        {
            m.rsplit("_", 1)[0]
            for values in per_image.values()
            for m in values
            if m.rsplit("_", 1)[-1] in protocol.SETTINGS
        }
    )
    lines = []
    for name, values in per_image.items():
        for setting in protocol.SETTINGS:
            count = len(values.get(f"psnr_{setting}", ()))
            for index in range(count):
                line = {"model": name, "setting": setting, "image": index}
                line.update(
                    {
                        m: float(values[f"{m}_{setting}"][index])
                        if f"{m}_{setting}" in values
                        else float("nan")
                        for m in measures
                    }
                )
                lines.append(line)
    return lines, ["model", "setting", "image", *measures]
