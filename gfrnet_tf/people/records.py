"""What the analysis pass keeps of each face: where it is, who it looks like, how good it is.

No pixels: a library of a million photos is analysed once, grouped into people, and only
then restored, so a face is a few hundred bytes until its photo is decoded again.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class FaceQuality:
    """How good a face is as a guide; `score` ranks faces (higher is better, in [0, 1]).

    `size_px`: the face box's shorter side in photo pixels; `sharpness`: normalised for the
    face's size (comparable between faces of different sizes); `yaw`: degrees, 0 = frontal;
    `eyes_open`: the eye aspect ratio (~0.3 open, < 0.2 closed).
    """

    size_px: float
    sharpness: float
    yaw: float
    eyes_open: float
    score: float


@dataclasses.dataclass(frozen=True, eq=False)
class FaceRecord:
    """One face of a photo (or one face track of a clip).

    `photo`: the photo's path relative to the library root, `/`-separated, as
    `gfrnet_tf.io.paths.printable` prints it (a guide from a `--guides DIR` folder is
    `guides:<person>/<file>`, a `--guide FILE` is `guide:<file name>`); `index`: its place
    among the photo's faces in `in_position_order`; `box`: `(x, y, width, height)` integer
    pixels of the upright photo; `landmarks`: `[68, 2]` pixel `(x, y)` in the photo
    (iBUG-300W order); `embedding`: the identity embedding (`gfrnet_tf.faces.identity`);
    `frames`: a clip track's first and last frame, None for photos; `frame`: the track's
    sharpest frame, where its `box`, `landmarks` and `quality` were seen (None for photos).
    """

    photo: str
    index: int
    box: tuple[int, int, int, int]
    landmarks: np.ndarray
    embedding: np.ndarray
    quality: FaceQuality
    frames: tuple[int, int] | None = None
    frame: int | None = None

    @property
    def key(self) -> tuple[str, int]:
        """`(photo, index)`: names the face in `faces.csv`, `people.json` and logs."""
        return self.photo, self.index

    @property
    def album(self) -> str:
        """The top-level folder of the library the photo is in ('' directly in the root):
        people without a named guide are found within one album."""
        head, slash, _ = self.photo.partition("/")
        return head if slash else ""


def in_position_order(boxes: Sequence[Sequence[float]]) -> list[int]:
    """Indices of `boxes` `(x, y, w, h)` from left to right (then top to bottom): "face k"
    of a photo is its k-th face from the left, whatever the detector's confidence order."""
    return sorted(
        range(len(boxes)), key=lambda i: (boxes[i][0], boxes[i][1], boxes[i][2], boxes[i][3])
    )
