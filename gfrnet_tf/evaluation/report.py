"""Writing evaluation results: a Markdown table for the terminal, CSV and JSON files, a PNG grid.

Every file is written to a temporary name in its folder and renamed, so an interrupted
run never leaves a file that looks complete.
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Mapping, Sequence

import numpy as np

from gfrnet_tf.io import save_image
from gfrnet_tf.io.atomic import atomic_writer
from gfrnet_tf.visualize import PAIR_PANELS, labelled_grid


def format_value(column: str, value) -> str:
    """PSNR with 2 decimals (dB), other floats with 4, missing values as `n/a`."""
    if isinstance(value, float):
        if _is_missing(value):
            return "n/a"
        return f"{value:.2f}" if column.startswith("psnr") else f"{value:.4f}"
    return str(value)


def markdown_table(rows: Sequence[Mapping], columns: Sequence[str]) -> str:
    """One row per model, one column per measure, as a GitHub Markdown table."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(format_value(c, row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_csv(path, rows: Sequence[Mapping], columns: Sequence[str]) -> None:
    """Full-precision values, one row per model; missing values as empty cells."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: "" if _is_missing(row[c]) else row[c] for c in columns})
    write_text(path, buffer.getvalue())


def write_json(path, payload) -> None:
    """Strict JSON (NaN and infinity become null, which other tools can read)."""
    write_text(path, json.dumps(_nan_to_none(payload), indent=2, sort_keys=True) + "\n")


def write_example_grid(path, rows: Sequence[Sequence[np.ndarray]]) -> None:
    """PNG of uint8 example rows I_d | I_g | I_w | restored | I, each column labelled."""
    save_image(path, labelled_grid(PAIR_PANELS, rows))


def write_text(path, text: str) -> None:
    """UTF-8 text, atomically."""
    with atomic_writer(path) as stream:
        stream.write(text.encode("utf-8"))


def _is_missing(value) -> bool:
    """None, NaN (a measure the model cannot give) or infinity (e.g. zero inter-ocular distance)."""
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def _nan_to_none(value):
    if isinstance(value, Mapping):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(v) for v in value]
    return None if _is_missing(value) else value
