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
# Padding to multiples of 128 px lets photos of different sizes share a batch: for 250-500 px
# photos in batches of 16, 128 cost ~110 ms CPU per photo vs ~155 ms with 64 (fewer
# shared shapes) and ~180 ms one by one; 256 gained nothing more.
SHAPE_BUCKET = 128
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


def detect_faces(image: np.ndarray, min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> list[Face]:
    """All faces in uint8 RGB `image`, most confident first, in its pixel coordinates."""
    return detect_faces_batch([image], min_confidence)[0]


def detect_faces_batch(images, min_confidence: float = DEFAULT_MIN_CONFIDENCE):
    """`detect_faces` for many photos, run as MTCNN batches of equal padded shape.

    A batch of 16 costs 1.3-1.8x less CPU per photo than 16 single calls. mtcnn 1.0 pads
    a mixed-size batch and then reports boxes in the padded frame and changes them, so
    each photo is first padded (bottom/right, black) to a multiple of `SHAPE_BUCKET`
    on its own. Even so a photo's detections can depend on its batch neighbours: mtcnn
    sorts the proposals of the whole batch together (an unstable sort: tied scores of one
    photo are ordered by the others' proposals), and RNet/ONet round differently for one
    patch than for several (measured, ~1e-7). Where outputs must not depend on batching
    (`gfrnet-prepare`), detect one photo per call.
    """
    inputs = [_detection_input(np.asarray(image)) for image in images]
    by_shape = {}
    for index, (padded, _) in enumerate(inputs):
        by_shape.setdefault(padded.shape, []).append(index)
    results = [None] * len(inputs)
    for indices in by_shape.values():
        found = detector().detect_faces([inputs[i][0] for i in indices])
        for index, detections in zip(indices, found):
            results[index] = _faces(detections, inputs[index][1], min_confidence)
    return results


def _detection_input(image: np.ndarray) -> tuple[np.ndarray, float]:
    """The photo shrunk to `DETECTION_MAX_SIDE` and padded to the bucket; the scale used."""
    scale = min(1.0, DETECTION_MAX_SIDE / max(image.shape[:2]))
    if scale < 1.0:
        size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    height, width = image.shape[:2]
    padded = np.zeros(
        (-(-height // SHAPE_BUCKET) * SHAPE_BUCKET, -(-width // SHAPE_BUCKET) * SHAPE_BUCKET, 3),
        np.uint8,
    )
    padded[:height, :width] = image
    return padded, scale


def _faces(detections, scale: float, min_confidence: float) -> list[Face]:
    faces = [
        Face(
            box=tuple(float(v) / scale for v in result["box"]),
            confidence=float(result["confidence"]),
            keypoints=np.array([result["keypoints"][k] for k in KEYPOINT_NAMES], np.float32)
            / scale,
        )
        for result in detections
        if result["confidence"] >= min_confidence
    ]
    # Ties broken by position so the order never depends on the detector's internals.
    return sorted(faces, key=lambda face: (-face.confidence, face.box))


def best_face(image: np.ndarray, source, min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> Face:
    """The most confident face; `NoFaceError(source, ...)` when there is none."""
    faces = detect_faces(image, min_confidence)
    if not faces:
        raise NoFaceError(source, f"no face with confidence >= {min_confidence}")
    return faces[0]
