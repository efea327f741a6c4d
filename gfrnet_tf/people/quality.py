"""How good a face is as a guide, in one score: the library's guide choice, its decision to
restore a face, and the check that a restored face came out better all use this one.

`score` = `RESOLUTION_WEIGHT` x resolution (the face box's shorter side over
`FULL_RESOLUTION_PX`, at most 1) + `DETAIL_WEIGHT` x detail (`faces.quality.face_detail`
over `FULL_DETAIL`, at most 1) + `FRONTAL_WEIGHT` x cos(yaw) + `EYES_WEIGHT` x eye
openness (eye aspect ratio over `OPEN_EYES`, at most 1). Detail weighs most: it is what a
restoration changes and what degradation takes away (measured on the test portraits,
Eq. 4 with blur 1.5, noise 3, JPEG 40: detail 0.73-0.93 clean, 0.30-0.40 at 2x,
0.18-0.30 at 4x, 0.19 at 8x; the same faces upscaled 2x: 0.74-0.98).
"""

from __future__ import annotations

import numpy as np

from gfrnet_tf.faces.quality import DETAIL_SIDE, eye_aspect_ratio, face_detail, yaw_degrees
from gfrnet_tf.people.records import FaceQuality

# Detail is measured at most DETAIL_SIDE px wide: a larger face has no more to show there,
# and an upscaled blurry face gets no credit for its size.
FULL_RESOLUTION_PX = DETAIL_SIDE
FULL_DETAIL = 0.7
OPEN_EYES = 0.25
RESOLUTION_WEIGHT, DETAIL_WEIGHT, FRONTAL_WEIGHT, EYES_WEIGHT = 0.3, 0.5, 0.1, 0.1


def face_quality(image: np.ndarray, box, landmarks) -> FaceQuality:
    """The `FaceQuality` of the face in `box` = (x, y, w, h) with 68 `landmarks` of `image`."""
    size = float(min(box[2], box[3]))
    detail = face_detail(image, box)
    yaw = yaw_degrees(landmarks)
    eyes = eye_aspect_ratio(landmarks)
    score = (
        RESOLUTION_WEIGHT * min(size / FULL_RESOLUTION_PX, 1.0)
        + DETAIL_WEIGHT * min(detail / FULL_DETAIL, 1.0)
        + FRONTAL_WEIGHT * max(float(np.cos(np.radians(yaw))), 0.0)
        + EYES_WEIGHT * min(eyes / OPEN_EYES, 1.0)
    )
    return FaceQuality(size, detail, yaw, eyes, round(float(score), 6))
