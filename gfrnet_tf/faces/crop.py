"""Square face crops around a detector box, as §4.1: cropped and resized, not aligned.

The square is centred on the box, so faces keep their pose and in-plane tilt (WarpNet
must learn to undo them) and every crop of a collection has the face at the same place
and scale. Where the square leaves the photo it is padded with black rather than
shifted or mirrored: mirrored padding would invent a second chin or ear.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

# A side of (1 + 2 * margin) box widths keeps the forehead, chin and jaw line that
# MTCNN's box cuts off, which the 68-point jaw outline needs.
DEFAULT_MARGIN = 0.25
DEFAULT_SIZE = 256


@dataclasses.dataclass(frozen=True)
class CropWindow:
    """A square `side` px wide at (x0, y0) of the photo, resized to `size` px."""

    x0: int
    y0: int
    side: int
    size: int

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """Maps photo pixel (x, y) to crop pixel (x, y), pixel centres aligned as in resize."""
        scale = self.size / self.side
        offset = np.array([self.x0, self.y0], np.float64)
        return ((np.asarray(points, np.float64) - offset + 0.5) * scale - 0.5).astype(np.float32)


def square_window(box, margin: float = DEFAULT_MARGIN, size: int = DEFAULT_SIZE) -> CropWindow:
    """The square around `box` = (x, y, width, height) with `margin` box sides each way."""
    x, y, width, height = box
    side = max(int(round(max(width, height) * (1 + 2 * margin))), 1)
    centre_x, centre_y = x + width / 2, y + height / 2
    return CropWindow(int(round(centre_x - side / 2)), int(round(centre_y - side / 2)), side, size)


def crop_face(
    image: np.ndarray, box, margin: float = DEFAULT_MARGIN, size: int = DEFAULT_SIZE
) -> tuple[np.ndarray, CropWindow]:
    """uint8 `[size, size, 3]` crop of `image` around `box`, and the window used."""
    window = square_window(box, margin, size)
    height, width = image.shape[:2]
    square = np.zeros((window.side, window.side, 3), np.uint8)
    top, left = max(window.y0, 0), max(window.x0, 0)
    bottom = min(window.y0 + window.side, height)
    right = min(window.x0 + window.side, width)
    if bottom > top and right > left:
        square[top - window.y0 : bottom - window.y0, left - window.x0 : right - window.x0] = image[
            top:bottom, left:right
        ]
    # INTER_AREA averages when shrinking (no aliasing); cubic when a small face is enlarged.
    interpolation = cv2.INTER_AREA if window.side >= size else cv2.INTER_CUBIC
    return cv2.resize(square, (size, size), interpolation=interpolation), window
