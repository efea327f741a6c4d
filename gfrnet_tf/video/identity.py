"""Identity distance of restored video faces to their guide, on the crops a clip makes.

The measure is the evaluation's (`gfrnet_tf.faces.identity.DlibIdentity`: dlib's 128-D
face descriptor, same person below a Euclidean distance of 0.6). A clip's crops are
squares around a detector box with a known margin, so the face is the centred square of
side `size / (1 + 2 * margin)`: dlib's 68 landmarks are located from that box, as the
records' landmarks were. One embedding costs ~0.2 s on this CPU, which is why a clip
samples frames for it.
"""

from __future__ import annotations

import numpy as np

from gfrnet_tf.errors import MissingDependencyError
from gfrnet_tf.faces import DlibLandmarks
from gfrnet_tf.faces.identity import DlibIdentity, IdentityModelError


class IdentityEmbedder:
    """`embed(crop, margin)` -> float `[128]`; raises when dlib or its models are missing."""

    def __init__(self):
        self._landmarks = DlibLandmarks()
        self._identity = DlibIdentity()

    def embed(self, crop: np.ndarray, margin: float) -> np.ndarray:
        size = crop.shape[0]
        inset = size * margin / (1 + 2 * margin)
        points = self._landmarks.locate(crop, (inset, inset, size - 2 * inset, size - 2 * inset))
        return self._identity.embed(crop[np.newaxis], points[np.newaxis])[0]


def optional_embedder() -> IdentityEmbedder | None:
    """An `IdentityEmbedder`, or None when dlib or its models are not installed."""
    try:
        return IdentityEmbedder()
    except (MissingDependencyError, IdentityModelError):
        return None


def identity_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance of two embeddings (below 0.6: the same person)."""
    return float(DlibIdentity.distance(a, b))
