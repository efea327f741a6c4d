"""Face detection with MTCNN, one detector per process.

The `mtcnn` package ships its weights, so nothing is downloaded. Building the detector
loads three Keras networks (seconds), so it is built once per process on first use and
shared: Beam workers warm it in `DoFn.setup`, the CLI on its first photo.
"""

from __future__ import annotations

import dataclasses
import functools

import cv2
import numpy as np

from gfrnet_tf.errors import NoFaceError

DEFAULT_MIN_CONFIDENCE = 0.9
# Photos are detected at most this large (boxes mapped back): MTCNN's pyramid cost grows
# with the pixel count, and a face that would need more resolution than this is smaller
# than 20 * side / 1024 px, too small to train on anyway.
DETECTION_MAX_SIDE = 1024
# MTCNN is always run with its default `min_face_size` (20): mtcnn 1.0 derives the number
# of pyramid levels from the image size alone, so a larger value drops the coarse levels
# and misses large faces (measured: the 83x107 px face of the 512 px astronaut is not
# found with min_face_size=32). Callers filter on size afterwards instead.
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


def detect_faces(image: np.ndarray,
                 min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> list[Face]:
    """All faces in uint8 RGB `image`, most confident first, in its pixel coordinates."""
    scale = min(1.0, DETECTION_MAX_SIDE / max(image.shape[:2]))
    if scale < 1.0:
        size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    found = detector().detect_faces(np.ascontiguousarray(image))
    faces = [
        Face(box=tuple(float(v) / scale for v in result["box"]),
             confidence=float(result["confidence"]),
             keypoints=np.array([result["keypoints"][k] for k in KEYPOINT_NAMES],
                                np.float32) / scale)
        for result in found if result["confidence"] >= min_confidence
    ]
    # Ties broken by position so the order never depends on the detector's internals.
    return sorted(faces, key=lambda face: (-face.confidence, face.box))


def best_face(image: np.ndarray, source,
              min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> Face:
    """The most confident face; `NoFaceError(source, ...)` when there is none."""
    faces = detect_faces(image, min_confidence)
    if not faces:
        raise NoFaceError(source, f"no face with confidence >= {min_confidence}")
    return faces[0]
