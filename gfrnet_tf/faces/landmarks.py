"""68 iBUG-300W landmarks behind one small interface: dlib's predictor or the user's files.

Both sources answer in pixel (x, y) of the photo they are given, so the pipeline maps
them into the crop the same way whichever the source.
"""

from __future__ import annotations

import abc
import csv
import functools
import importlib.util
import os
from pathlib import Path

import numpy as np

from gfrnet_tf.errors import GFRNetError, MissingDependencyError, optional_dependency
from gfrnet_tf.ibug68 import NUM_LANDMARKS


class LandmarksError(GFRNetError):
    """No usable 68 landmarks for a photo: missing or malformed file, predictor missing."""

    reason = "no_landmarks"


class LandmarkSource(abc.ABC):
    """Gives the 68 landmarks of the face in `box` of a photo."""

    @abc.abstractmethod
    def locate(self, image: np.ndarray, box, key: str) -> np.ndarray:
        """float32 `[68, 2]` pixel (x, y) in `image`; `key` = photo path relative to the input
        root."""


def packaged_dlib_model(file_name: str) -> Path:
    """A dlib model file inside the `face-recognition-models` package.

    Found without importing the package: its `__init__` needs `pkg_resources`, which
    current setuptools no longer ships.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("face_recognition_models")
    return Path(spec.submodule_search_locations[0]) / "models" / file_name


def default_predictor_path() -> Path:
    """dlib's 68-point model inside the `face-recognition-models` package."""
    return packaged_dlib_model("shape_predictor_68_face_landmarks.dat")


@functools.cache
def _predictor(path: str):
    with optional_dependency():  # imported only when dlib landmarks are asked for
        import dlib

    if not os.path.isfile(path):
        raise LandmarksError(path, "dlib shape predictor file not found")
    return dlib.shape_predictor(path)


class DlibLandmarks(LandmarkSource):
    """dlib's regression-tree predictor (trained on iBUG 300-W: non-commercial terms).

    Started from the MTCNN box as is: on the astronaut photo this moves the points by
    0.5 px on average against dlib's own detector box, not worth a second detector.
    The predictor (100 MB) is loaded once per process, so instances pickle cheaply.
    """

    def __init__(self, predictor_path=None):
        # Missing dlib fails here, once, not as a rejection of every photo of a batch.
        with optional_dependency():
            import dlib  # noqa: F401
        self.predictor_path = str(predictor_path or default_predictor_path())

    def locate(self, image, box, key=""):
        with optional_dependency():
            import dlib

        x, y, width, height = (int(round(v)) for v in box)
        shape = _predictor(self.predictor_path)(
            np.ascontiguousarray(image), dlib.rectangle(x, y, x + width, y + height)
        )
        return np.array([(p.x, p.y) for p in shape.parts()], np.float32)


class FileLandmarks(LandmarkSource):
    """Landmarks the user supplies, looked up by the photo's path relative to the input.

    `location` is either a folder mirroring the input with one 300W `.pts` per photo
    (`alice/001.jpg` -> `location/alice/001.pts`), or a CSV file with a header and rows
    `image,x0,y0,...,x67,y67` (0-based pixel coordinates, `image` the relative path).
    A CSV is loaded whole into every worker (~0.6 KB per photo): fine for a few hundred
    thousand photos; use the `.pts` folder for VGGFace2-sized collections.
    """

    def __init__(self, location):
        self.location = Path(location)
        if not self.location.exists():
            raise LandmarksError(self.location, "landmark folder or CSV not found")
        self._table = read_landmarks_csv(self.location) if self.location.is_file() else None

    def locate(self, image, box, key):
        if self._table is not None:
            if key not in self._table:
                raise LandmarksError(self.location, f"no row for {key!r}")
            return self._table[key]
        path = (self.location / Path(key).with_suffix(".pts")).resolve()
        if not path.is_relative_to(self.location.resolve()):
            raise LandmarksError(key, f"photo name escapes the landmark folder {self.location}")
        return read_pts(path)


def read_pts(path) -> np.ndarray:
    """A 300W `.pts` file as 0-based pixel (x, y): the format is 1-based (Matlab), as menpo
    reads it."""
    path = Path(path)
    try:
        lines = path.read_text().split("\n")
    except (OSError, UnicodeDecodeError) as error:
        raise LandmarksError(path, f"cannot read landmark file ({error})")
    try:
        start, end = lines.index("{") + 1, lines.index("}")
    except ValueError:
        start = end = 0
    rows = [line.split() for line in lines[start:end] if line.strip()]
    return _validated(path, rows) - 1.0


def read_landmarks_csv(path) -> dict[str, np.ndarray]:
    """`{relative image path: float32 [68, 2]}` from a CSV of `image,x0,y0,...,x67,y67`."""
    path = Path(path)
    try:
        with open(path, newline="") as stream:
            rows = list(csv.reader(stream))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise LandmarksError(path, f"cannot read landmark CSV ({error})")
    table = {}
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != 1 + 2 * NUM_LANDMARKS:
            raise LandmarksError(
                path,
                f"line {number}: expected image + {2 * NUM_LANDMARKS} "
                f"numbers, got {len(row)} fields",
            )
        table[row[0]] = _validated(f"{path}:{number}", np.reshape(row[1:], (-1, 2)))
    return table


def _validated(source, rows) -> np.ndarray:
    try:
        points = np.asarray(rows, np.float64)
    except ValueError:
        raise LandmarksError(source, "landmarks are not numbers")
    if points.shape != (NUM_LANDMARKS, 2):
        raise LandmarksError(
            source, f"expected {NUM_LANDMARKS} (x, y) points, got shape {points.shape}"
        )
    if not np.isfinite(points).all():
        raise LandmarksError(source, "landmarks contain NaN or infinity")
    return points.astype(np.float32)
