"""The bundled sample face: one real, public-domain photo that ships with the library.

A 256x256 face crop of scikit-image's `astronaut` (Eileen Collins, NASA, public domain)
with its 68 landmarks, for the demo, docs and tests. Regenerate with
`python -m gfrnet_tf.pipelines.make_sample`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gfrnet_tf.errors import BadRecordError
from gfrnet_tf.io.images import load_image

SAMPLE_DIR = Path(__file__).parent / "sample_data"
IMAGE_PATH = SAMPLE_DIR / "astronaut_face.png"
LANDMARKS_PATH = SAMPLE_DIR / "astronaut_face_landmarks.json"


def load_sample() -> tuple[np.ndarray, np.ndarray]:
    """(image uint8 `[256, 256, 3]`, landmarks float32 `[68, 2]` pixel (x, y) of it)."""
    image = load_image(IMAGE_PATH)
    landmarks = np.asarray(json.loads(LANDMARKS_PATH.read_text())["landmarks"], np.float32)
    if landmarks.shape != (68, 2):
        raise BadRecordError(LANDMARKS_PATH, f"expected 68 (x, y) points, got {landmarks.shape}")
    return image, landmarks
