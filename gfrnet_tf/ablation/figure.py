"""The study's figure, drawn with OpenCV: bar charts of the variants above a face grid.

No plotting library: a bar chart is rectangles and text, and OpenCV is already needed.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import cv2
import numpy as np

from gfrnet_tf.evaluation import protocol, runner
from gfrnet_tf.visualize import FONT, INK, labelled_grid

GRID_GREY = (200, 200, 200)
# Nine columns of faces: shown at twice 64 px, not at the single-picture display size.
FACE_DISPLAY = 128
BAR_COLOURS = ((66, 133, 244), (234, 67, 53), (251, 188, 5), (52, 168, 83))


def bar_chart(
    title: str,
    labels: Sequence[str],
    series: Mapping[str, Sequence[float]],
    height: int = 260,
    bar_width: int = 30,
) -> np.ndarray:
    """uint8 RGB chart: one group of bars per label, one bar per series (NaN: no bar).

    The value axis starts below the smallest value (PSNRs differ by tenths of a dB on
    top of ~20), so the differences are visible; the values are printed on the bars.
    """
    values = np.array([list(v) for v in series.values()], np.float64)
    finite = values[np.isfinite(values)]
    low, high = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
    span = max(high - low, 1e-6)
    bottom = low - 0.25 * span
    top = high + 0.1 * span
    group = bar_width * len(series) + 24
    left_margin, plot_top, plot_bottom = 56, 40, height - 40
    width = left_margin + group * len(labels) + 16
    image = np.full((height, width, 3), 255, np.uint8)
    cv2.putText(image, title, (8, 20), FONT, 0.5, INK, 1, cv2.LINE_AA)
    for tick in np.linspace(bottom, top, 4):
        y = _y(tick, bottom, top, plot_top, plot_bottom)
        cv2.line(image, (left_margin, y), (width - 8, y), GRID_GREY, 1)
        cv2.putText(image, _number(tick), (4, y + 4), FONT, 0.35, INK, 1, cv2.LINE_AA)
    for g, label in enumerate(labels):
        x0 = left_margin + g * group + 12
        for s, (name, column) in enumerate(series.items()):
            value = column[g]
            if not math.isfinite(value):
                continue
            x = x0 + s * bar_width
            y = _y(value, bottom, top, plot_top, plot_bottom)
            colour = BAR_COLOURS[s % len(BAR_COLOURS)]
            cv2.rectangle(image, (x, y), (x + bar_width - 3, plot_bottom), colour, -1)
            cv2.putText(image, _number(value), (x - 2, y - 3), FONT, 0.28, INK, 1, cv2.LINE_AA)
        cv2.putText(image, label, (x0, plot_bottom + 16), FONT, 0.4, INK, 1, cv2.LINE_AA)
    for s, name in enumerate(series):  # legend
        x = left_margin + 8 + 110 * s
        cv2.rectangle(
            image, (x, height - 16), (x + 10, height - 6), BAR_COLOURS[s % len(BAR_COLOURS)], -1
        )
        cv2.putText(image, name, (x + 14, height - 6), FONT, 0.38, INK, 1, cv2.LINE_AA)
    return image


def stack(parts: Sequence[np.ndarray], gap: int = 8, axis: int = 0) -> np.ndarray:
    """Images one above the other (`axis=0`) or side by side (1) on white, top-left aligned."""
    height = max(part.shape[0] for part in parts) + (gap if axis == 1 else 0)
    width = max(part.shape[1] for part in parts) + (gap if axis == 0 else 0)
    padded = []
    for part in parts:
        shape = (part.shape[0] + gap, width) if axis == 0 else (height, part.shape[1] + gap)
        canvas = np.full((*shape, 3), 255, np.uint8)
        canvas[: part.shape[0], : part.shape[1]] = part
        padded.append(canvas)
    return np.concatenate(padded, axis=axis)


def _y(value, bottom, top, plot_top, plot_bottom) -> int:
    return int(round(plot_bottom - (value - bottom) / (top - bottom) * (plot_bottom - plot_top)))


def _number(value: float) -> str:
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3f}"


def study_figure(
    evaluation: protocol.Evaluation, rows: Sequence[str], settings: Sequence[str]
) -> np.ndarray:
    """Bar charts (PSNR at 4x/8x; identity distance and LMD at 4x/8x) above the 4x faces."""
    by_name = {row["model"]: row for row in evaluation.rows}
    names = [name for name in [runner.BASELINE, *rows] if name in by_name]
    labels = ["input" if name == runner.BASELINE else name for name in names]
    charts = [
        bar_chart(
            "PSNR (dB), higher is better",
            labels,
            {f"PSNR {s}": [by_name[n][f"psnr_{s}"] for n in names] for s in settings},
        )
    ]
    for measure, title in (
        ("identity_distance", "dlib identity distance, lower is better"),
        ("lmd", "LMD (inter-ocular units), lower is better"),
    ):
        if f"{measure}_4x" in evaluation.columns:
            charts.append(
                bar_chart(
                    title,
                    labels,
                    {
                        f"{measure} {s}": [by_name[n][f"{measure}_{s}"] for n in names]
                        for s in settings
                    },
                )
            )
    faces = evaluation.setting_examples.get("4x", {})
    columns = [*names, protocol.GROUND_TRUTH]
    parts = [stack(charts, axis=1)]
    if all(faces.get(name) for name in columns):
        count = min(len(faces[name]) for name in columns)
        grid_rows = [[faces[name][i] for name in columns] for i in range(count)]
        parts.append(labelled_grid(["input 4x", *labels[1:], "truth"], grid_rows, FACE_DISPLAY))
    return stack(parts)
