"""Face detection with MTCNN, one detector per process.

The `mtcnn` package ships its weights, so nothing is downloaded. Building the detector
loads three Keras networks (seconds), so it is built once per process on first use and
shared: Beam workers warm it in `DoFn.setup`, the CLI on its first photo.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from gfrnet_tf.errors import NoFaceError

# MTCNN's own default; faces smaller than this are not proposed at all.
DEFAULT_MIN_FACE_SIZE = 20
DEFAULT_MIN_CONFIDENCE = 0.9
KEYPOINT_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclasses.dataclass(frozen=True)
class Face:
    """One detection: `box` = (x, y, width, height) pixels, 5 keypoints `[5, 2]` (x, y)."""

    box: tuple[float, float, float, float]
    confidence: float
    keypoints: np.ndarray


@functools.cache
def detector():
    """The process-wide MTCNN (imported here: importing it starts TensorFlow)."""
    from mtcnn import MTCNN

    return MTCNN()


def detect_faces(image: np.ndarray, min_face_size: int = DEFAULT_MIN_FACE_SIZE,
                 min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> list[Face]:
    """All faces in uint8 RGB `image`, most confident first."""
    found = detector().detect_faces(np.ascontiguousarray(image), min_face_size=min_face_size)
    faces = [
        Face(box=tuple(float(v) for v in result["box"]),
             confidence=float(result["confidence"]),
             keypoints=np.array([result["keypoints"][k] for k in KEYPOINT_NAMES], np.float32))
        for result in found if result["confidence"] >= min_confidence
    ]
    # Ties broken by position so the order never depends on the detector's internals.
    return sorted(faces, key=lambda face: (-face.confidence, face.box))


def best_face(image: np.ndarray, source, min_face_size: int = DEFAULT_MIN_FACE_SIZE,
              min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> Face:
    """The most confident face; `NoFaceError(source, ...)` when there is none."""
    faces = detect_faces(image, min_face_size, min_confidence)
    if not faces:
        raise NoFaceError(source, f"no face of at least {min_face_size} px with confidence "
                                  f">= {min_confidence}")
    return faces[0]
