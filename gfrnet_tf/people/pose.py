"""Choosing, per face, the guide photo whose pose is closest.

WarpNet has to move the guide into the pose of the degraded face; the less it has to
move, the better the warped guide. Pose is compared on landmark shapes after removing
translation and scale (crops differ in where the face sits and how large it is) but
not rotation: the crops are not aligned, so an in-plane tilt is part of what WarpNet
must undo. Any landmark layout works as long as both sides use the same one: the
68-point iBUG-300W set when dlib is available, else MTCNN's 5 points (eyes, nose,
mouth corners), which still separate frontal from turned faces.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def normalized_shape(landmarks: np.ndarray) -> np.ndarray:
    """Landmarks `[N, 2]` centred on their mean and scaled to unit RMS radius."""
    points = np.asarray(landmarks, np.float64)
    centred = points - points.mean(axis=0)
    return centred / np.sqrt((centred**2).sum(axis=1).mean())


def pose_distance(landmarks: np.ndarray, other: np.ndarray) -> float:
    """Mean distance between two normalised landmark shapes (0 = same pose)."""
    if np.shape(landmarks) != np.shape(other):
        raise ValueError(
            f"landmark sets differ in layout: {np.shape(landmarks)} vs {np.shape(other)}"
        )
    difference = normalized_shape(landmarks) - normalized_shape(other)
    return float(np.linalg.norm(difference, axis=1).mean())


def choose_guide(
    face_landmarks: np.ndarray, guide_landmarks: Sequence[np.ndarray]
) -> tuple[int, list[float]]:
    """Index of the guide closest in pose to the face, and every guide's distance."""
    if not guide_landmarks:
        raise ValueError("choose_guide needs at least one guide")
    distances = [pose_distance(face_landmarks, guide) for guide in guide_landmarks]
    return int(np.argmin(distances)), distances
