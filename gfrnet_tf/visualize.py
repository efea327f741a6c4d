"""Pictures for people: image grids (I_d | I_g | I_w | restored | I) and flow colouring."""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np


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


LABEL_HEIGHT = 18


def labelled_panels(
    rows: Sequence[Sequence[np.ndarray]], labels: Sequence[Sequence[str]], gap: int = 2
) -> np.ndarray:
    """`image_grid` with a one-line label in a white strip above each panel (cut to fit):
    contact sheets name every face, not a column."""
    labelled = [
        [_with_label(image, label) for image, label in zip(row, names)]
        for row, names in zip(rows, labels)
    ]
    return image_grid(labelled, gap)


def _with_label(image: np.ndarray, label: str) -> np.ndarray:
    width = image.shape[1]
    strip = np.full((LABEL_HEIGHT, width, 3), 255, np.uint8)
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.4
    text = label.encode("ascii", "replace").decode("ascii")  # Hershey fonts are ASCII
    while text and cv2.getTextSize(text, font, scale, 1)[0][0] > width - 4:
        text = text[:-1]
    cv2.putText(strip, text, (2, LABEL_HEIGHT - 5), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([strip, image], axis=0)


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
