"""Face identity embeddings of aligned faces: dlib's face-recognition ResNet or a user's ArcFace.

Both embedders take a uint8 RGB image and the face's 68 iBUG-300W landmarks (pixel x, y)
and align the face themselves, each the way its network was trained:

- `DlibIdentity`: dlib's `dlib_face_recognition_resnet_model_v1.dat` (128-D, shipped in
  `face-recognition-models` beside the 68-point predictor) on dlib's face chip
  (`dlib.get_face_chip(image, shape, size=150, padding=0.25)`). Distances are Euclidean;
  dlib calls two faces the same person below 0.6 (99.38 % on LFW, dlib's model card).
- `ArcFaceIdentity`: a user-supplied ArcFace model, ONNX (onnxruntime) or TFLite (LiteRT).
  Input: one 112x112 RGB face warped by the similarity transform that best maps (least
  squares, Umeyama) its 5 points -- eye centres, nose tip, mouth corners, taken from the 68
  -- onto the standard ArcFace template (`ARCFACE_TEMPLATE`, insightface's), as float32
  `(pixel - 127.5) / 127.5`; the layout is read from the model's input shape (NCHW
  `[1, 3, 112, 112]` as insightface exports, or NHWC `[1, 112, 112, 3]`). The output
  embedding is L2-normalised; the distance is the angle between embeddings in degrees,
  the "Deg." of the face-restoration literature.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import cv2
import numpy as np

from gfrnet_tf import ibug68
from gfrnet_tf.errors import (
    BadModelFileError,
    GFRNetError,
    MissingDependencyError,
    first_line,
    optional_dependency,
)
from gfrnet_tf.faces.landmarks import packaged_dlib_model

DLIB_CHIP_SIZE, DLIB_CHIP_PADDING = 150, 0.25
DLIB_SAME_PERSON = 0.6
ARCFACE_SIZE = 112
# insightface's 5-point template for 112x112 crops: left eye, right eye (image left/right),
# nose tip, left and right mouth corner.
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    np.float64,
)


class IdentityModelError(GFRNetError):
    """An identity model file that is missing or of a kind no embedder reads."""

    reason = "identity_model"


def dlib_shape(landmarks):
    """68 pixel (x, y) points as a `dlib.full_object_detection` (dlib rounds to integers)."""
    with optional_dependency():
        import dlib

    points = np.asarray(landmarks, np.float64)
    (left, top), (right, bottom) = np.floor(points.min(0)), np.ceil(points.max(0))
    rectangle = dlib.rectangle(int(left), int(top), int(right), int(bottom))
    return dlib.full_object_detection(
        rectangle, [dlib.point(int(round(x)), int(round(y))) for x, y in points]
    )


def dlib_face_chip(image, landmarks) -> np.ndarray:
    """dlib's aligned 150x150 uint8 face chip of the face with these 68 landmarks."""
    with optional_dependency():
        import dlib

    return dlib.get_face_chip(
        np.ascontiguousarray(image, np.uint8),
        dlib_shape(landmarks),
        size=DLIB_CHIP_SIZE,
        padding=DLIB_CHIP_PADDING,
    )


@functools.cache
def _dlib_recognizer(path: str):
    with optional_dependency():
        import dlib
    if not os.path.isfile(path):
        raise IdentityModelError(path, "dlib face recognition model not found")
    return dlib.face_recognition_model_v1(path)


class DlibIdentity:
    """dlib's 128-D face descriptor; `distance` is Euclidean, same person below 0.6."""

    name = "dlib"
    threshold = DLIB_SAME_PERSON

    def __init__(self, model_path=None):
        self.model_path = str(
            model_path or packaged_dlib_model("dlib_face_recognition_resnet_model_v1.dat")
        )
        _dlib_recognizer(self.model_path)  # fail now, not at the first face

    def embed(self, images, landmarks) -> np.ndarray:
        """`[B, H, W, 3]` uint8 and `[B, 68, 2]` -> float64 `[B, 128]`."""
        chips = [dlib_face_chip(image, points) for image, points in zip(images, landmarks)]
        return np.array(
            _dlib_recognizer(self.model_path).compute_face_descriptor(chips), np.float64
        )

    @staticmethod
    def distance(a, b) -> np.ndarray:
        return np.linalg.norm(np.asarray(a) - np.asarray(b), axis=-1)


def five_points(landmarks) -> np.ndarray:
    """The ArcFace template's 5 points from 68 iBUG points: eye centres, nose tip, mouth corners."""
    points = np.asarray(landmarks, np.float64)
    return np.stack(
        [
            points[ibug68.RIGHT_EYE].mean(0),
            points[ibug68.LEFT_EYE].mean(0),
            points[ibug68.NOSE_TIP],
            points[ibug68.MOUTH_RIGHT],
            points[ibug68.MOUTH_LEFT],
        ]
    )


def similarity_transform(source, destination) -> np.ndarray:
    """The least-squares similarity `[2, 3]` mapping `source` points onto `destination`
    (Umeyama)."""
    source, destination = np.asarray(source, np.float64), np.asarray(destination, np.float64)
    source_mean, destination_mean = source.mean(0), destination.mean(0)
    centred_source, centred_destination = source - source_mean, destination - destination_mean
    covariance = centred_destination.T @ centred_source / len(source)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.diag([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt))])
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(singular) @ sign) / centred_source.var(0).sum()
    translation = destination_mean - scale * rotation @ source_mean
    return np.hstack([scale * rotation, translation[:, None]])


def arcface_crop(image, landmarks) -> np.ndarray:
    """The 112x112 uint8 RGB face aligned to `ARCFACE_TEMPLATE` (bilinear, as insightface)."""
    matrix = similarity_transform(five_points(landmarks), ARCFACE_TEMPLATE)
    return cv2.warpAffine(
        np.asarray(image, np.uint8),
        matrix,
        (ARCFACE_SIZE, ARCFACE_SIZE),
        flags=cv2.INTER_LINEAR,
        borderValue=0,
    )


class ArcFaceIdentity:
    """A user's ArcFace model file (`.onnx` or `.tflite`); `distance` is the angle in degrees."""

    name = "arcface"

    def __init__(self, path):
        self.path = str(path)
        if not os.path.isfile(self.path):
            raise IdentityModelError(self.path, "ArcFace model file not found")
        suffix = Path(self.path).suffix.lower()
        if suffix not in (".onnx", ".tflite"):
            raise IdentityModelError(
                self.path, f"ArcFace model must be .onnx or .tflite, got {suffix!r}"
            )
        runner = _onnx_runner if suffix == ".onnx" else _tflite_runner
        try:
            with optional_dependency(self.path):
                self._run, shape = runner(self.path)
        except MissingDependencyError:
            raise
        except Exception as error:  # noqa: BLE001 (a runtime's parse errors: not a model file)
            raise BadModelFileError(
                self.path, f"cannot load the model: {first_line(error)}"
            ) from None
        self.channels_first = _channels_first(self.path, shape)

    def embed(self, images, landmarks) -> np.ndarray:
        """`[B, H, W, 3]` uint8 and `[B, 68, 2]` -> L2-normalised float64 `[B, D]`."""
        rows = []
        for image, points in zip(images, landmarks):
            face = (arcface_crop(image, points).astype(np.float32) - 127.5) / 127.5
            face = face.transpose(2, 0, 1) if self.channels_first else face
            rows.append(np.asarray(self._run(face[np.newaxis]), np.float64).reshape(-1))
        embeddings = np.stack(rows)
        return embeddings / np.linalg.norm(embeddings, axis=-1, keepdims=True)

    @staticmethod
    def distance(a, b) -> np.ndarray:
        cosine = np.clip(np.sum(np.asarray(a) * np.asarray(b), axis=-1), -1.0, 1.0)
        return np.degrees(np.arccos(cosine))


def _onnx_runner(path):
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    name, shape = session.get_inputs()[0].name, session.get_inputs()[0].shape
    return (lambda face: session.run(None, {name: face})[0]), shape


def _tflite_runner(path):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path)
    interpreter.allocate_tensors()
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]

    def run(face):
        interpreter.set_tensor(source["index"], face)
        interpreter.invoke()
        return interpreter.get_tensor(target["index"])

    return run, list(source["shape"])


def _channels_first(path, shape) -> bool:
    dims = [d if isinstance(d, (int, np.integer)) else None for d in shape]
    if len(dims) == 4 and dims[1] == 3 and dims[2:] == [ARCFACE_SIZE, ARCFACE_SIZE]:
        return True
    if len(dims) == 4 and dims[3] == 3 and dims[1:3] == [ARCFACE_SIZE, ARCFACE_SIZE]:
        return False
    raise IdentityModelError(
        path, f"expects input [1, 3, 112, 112] or [1, 112, 112, 3], got {shape}"
    )
