"""Pictures for people: labelled face grids and flow colouring.

Every picture of faces the library writes (evaluation examples, gfrnet-restore's compare
images, the TensorBoard grid, the ablation figure) is a `labelled_grid`: each column named
in the image itself, and faces smaller than `DISPLAY_SIZE` enlarged by a whole factor with
nearest neighbour (each pixel a square block: nothing is invented or smoothed away), which a
line under the grid states.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

# The panels of one face pair, left to right, as every picture of them is labelled.
PAIR_PANELS = ("degraded", "guide", "warped guide", "restored", "ground truth")
# Faces smaller than this many pixels are shown enlarged (64 px faces at 4x).
DISPLAY_SIZE = 256
FONT = cv2.FONT_HERSHEY_SIMPLEX
INK = (30, 30, 30)
_LABEL_SCALE, _NOTE_SCALE, _SMALLEST_SCALE = 0.55, 0.45, 0.3
_MARGIN = 4


def image_grid(rows: Sequence[Sequence[np.ndarray]], gap: int = 2) -> np.ndarray:
    """Tiles equally sized uint8 RGB images `[H, W, 3]` row by row, `gap` white pixels apart."""
    shapes = {image.shape for row in rows for image in row}
    if len(shapes) != 1 or len({len(row) for row in rows}) != 1:
        raise ValueError(f"image_grid needs a full grid of equally sized images, got {shapes}")
    height, width, channels = shapes.pop()
    columns = len(rows[0])
    grid = np.full(
        (len(rows) * (height + gap) - gap, columns * (width + gap) - gap, channels), 255, np.uint8
    )
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            top, left = r * (height + gap), c * (width + gap)
            grid[top : top + height, left : left + width] = image
    return grid


def enlargement(side: int, display: int = DISPLAY_SIZE) -> int:
    """The whole factor that shows a `side`-pixel face at least `display` pixels wide (1 for
    faces that are large enough)."""
    return max(1, display // max(1, side))


def labelled_grid(
    labels: Sequence[str],
    rows: Sequence[Sequence[np.ndarray]],
    display: int = DISPLAY_SIZE,
    gap: int = 4,
) -> np.ndarray:
    """uint8 RGB: `rows` of equally sized uint8 RGB faces under one label per column, enlarged
    (nearest neighbour) when smaller than `display` pixels, with a line saying so."""
    if not rows or len(labels) != len(rows[0]):
        raise ValueError(f"labelled_grid needs one label per column, got {list(labels)}")
    height, width = rows[0][0].shape[:2]
    factor = enlargement(max(height, width), display)
    enlarged = [[np.repeat(np.repeat(face, factor, 0), factor, 1) for face in row] for row in rows]
    grid = image_grid(enlarged, gap)
    cell = width * factor + gap
    parts = [_labels(labels, cell, gap, grid.shape[1]), grid]
    if factor > 1:
        note = (
            f"{width}x{height} px faces shown {factor}x larger, nearest neighbour "
            f"(each pixel a {factor}x{factor} block)"
        )
        parts.append(_note(note, grid.shape[1]))
    return np.concatenate(parts)


def labelled_panels(
    rows: Sequence[Sequence[np.ndarray]], labels: Sequence[Sequence[str]], gap: int = 2
) -> np.ndarray:
    """`image_grid` with a label above each panel (cut to fit): contact sheets name every
    face, not a column."""
    labelled = [
        [
            np.concatenate([_labels([label], image.shape[1] + gap, gap, image.shape[1]), image])
            for image, label in zip(row, names)
        ]
        for row, names in zip(rows, labels)
    ]
    return image_grid(labelled, gap)


def flow_to_rgb(flow: np.ndarray, max_pixels: float | None = None) -> np.ndarray:
    """Colours a normalised flow `Phi` `[H, W, 2]` by its displacement from the identity.

    Hue is the direction the guide content moves, saturation the distance in pixels
    relative to `max_pixels` (default: the largest displacement, at least one pixel so
    float noise stays invisible), so the identity flow is white and a pure translation
    is one flat colour.
    """
    height, width = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.linspace(-1, 1, width), np.linspace(-1, 1, height))
    dx = (flow[..., 0] - grid_x) * (width - 1) / 2.0
    dy = (flow[..., 1] - grid_y) * (height - 1) / 2.0
    magnitude = np.hypot(dx, dy)
    scale = max_pixels or max(float(magnitude.max()), 1.0)
    hsv = np.stack(
        [
            (np.degrees(np.arctan2(dy, dx)) % 360.0) / 2.0,  # OpenCV 8-bit hue is 0..180
            np.clip(magnitude / scale, 0.0, 1.0) * 255.0,
            np.full_like(magnitude, 255.0),
        ],
        axis=-1,
    )
    return cv2.cvtColor(np.round(hsv).astype(np.uint8), cv2.COLOR_HSV2RGB)


def fitted_scale(text: str, width: int, scale: float = _LABEL_SCALE) -> float:
    """The largest font scale up to `scale` at which `text` fits in `width` pixels (never below
    a legible minimum: a longer text is then cut off by its cell)."""
    text_width = cv2.getTextSize(text, FONT, scale, 1)[0][0]
    if text_width <= width:
        return scale
    return max(_SMALLEST_SCALE, scale * width / text_width)


def _labels(labels: Sequence[str], cell: int, gap: int, width: int) -> np.ndarray:
    """A white band `width` pixels wide with each label at the left of its `cell`-wide column."""
    height = cv2.getTextSize("Ag", FONT, _LABEL_SCALE, 1)[0][1] + 3 * _MARGIN
    band = np.full((height, width, 3), 255, np.uint8)
    for column, label in enumerate(labels):
        label = label.encode("ascii", "replace").decode("ascii")  # Hershey fonts are ASCII
        scale = fitted_scale(label, cell - gap - 2)
        cv2.putText(
            band, label, (column * cell + 1, height - 2 * _MARGIN), FONT, scale, INK, 1, cv2.LINE_AA
        )
    return band


def _note(text: str, width: int) -> np.ndarray:
    """`text` wrapped at word boundaries into lines that fit `width` pixels, as a white band."""
    lines, line = [], ""
    for word in text.split():
        candidate = f"{line} {word}".strip()
        if line and cv2.getTextSize(candidate, FONT, _NOTE_SCALE, 1)[0][0] > width - 2:
            lines.append(line)
            candidate = word
        line = candidate
    lines.append(line)
    height = cv2.getTextSize("Ag", FONT, _NOTE_SCALE, 1)[0][1] + 2 * _MARGIN
    band = np.full((height * len(lines) + _MARGIN, width, 3), 255, np.uint8)
    for index, text_line in enumerate(lines):
        baseline = (index + 1) * height - _MARGIN // 2
        scale = fitted_scale(text_line, width - 2, _NOTE_SCALE)
        cv2.putText(band, text_line, (1, baseline), FONT, scale, INK, 1, cv2.LINE_AA)
    return band
