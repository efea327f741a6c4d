"""Per-clip measures of temporal stability: flicker and the spread of a per-frame value.

Flicker is the mean absolute difference (0-255 scale) between consecutive crops of the
same face after the face's motion has been compensated, so that only changes of the
face's own pixels count. `face_crop` makes such a crop when the motion is known (a test
clip made by moving a photo): it samples the frame through the inverse of the known
similarity, back into the photo's coordinates.
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def face_crop(frame: np.ndarray, photo_to_frame: np.ndarray, region, size: int) -> np.ndarray:
    """`region` = (x0, y0, x1, y1) of the photo, sampled from `frame` at `size` x `size`.

    `photo_to_frame` is the 2x3 affine matrix that placed the photo in the frame.
    """
    x0, y0, x1, y1 = region
    sx, sy = (x1 - x0) / size, (y1 - y0) / size
    # Pixel centres: crop pixel u covers photo x0 + (u + 0.5) * sx - 0.5, as cv2.resize.
    crop_to_photo = np.array(
        [[sx, 0, x0 + 0.5 * sx - 0.5], [0, sy, y0 + 0.5 * sy - 0.5], [0, 0, 1]]
    )
    crop_to_frame = np.vstack([photo_to_frame, [0, 0, 1]]) @ crop_to_photo
    return cv2.warpAffine(
        frame,
        crop_to_frame[:2],
        (size, size),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )


def mean_abs_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())


class RunningStats:
    """Mean, standard deviation, minimum and maximum of a stream, in constant memory (Welford)."""

    def __init__(self):
        self.count, self.mean, self._m2 = 0, 0.0, 0.0
        self.minimum, self.maximum = math.inf, -math.inf

    def add(self, value: float) -> None:
        self.count += 1
        delta = value - self.mean
        self.mean += delta / self.count
        self._m2 += delta * (value - self.mean)
        self.minimum, self.maximum = min(self.minimum, value), max(self.maximum, value)

    @property
    def std(self) -> float:
        """Population standard deviation (0 for fewer than two values)."""
        return math.sqrt(self._m2 / self.count) if self.count > 1 else 0.0


class Flicker:
    """Flicker of motion-compensated crops, fed one frame at a time.

    `add({key: crop})` per frame: `key` tells faces apart (a track id); a face is compared
    only with its crop of the frame just before, never across a gap.
    """

    def __init__(self):
        self.stats = RunningStats()
        self._previous = {}

    def add(self, crops: dict) -> None:
        for key, crop in crops.items():
            if key in self._previous:
                self.stats.add(mean_abs_difference(self._previous[key], crop))
        self._previous = dict(crops)

    @property
    def value(self) -> float:
        """Mean difference over every consecutive pair seen; NaN before the first pair."""
        return self.stats.mean if self.stats.count else math.nan
