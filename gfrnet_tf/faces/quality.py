"""Cheap quality measures used to filter photos and pick the guide (frontal, eyes open).

All work on iBUG-300W 68-point landmarks (`gfrnet_tf.ibug68`) or on the uint8 crop.
"""

from __future__ import annotations

import cv2
import numpy as np

from gfrnet_tf.ibug68 import JAW_LEFT_END, JAW_RIGHT_END, LEFT_EYE, NOSE_TIP, RIGHT_EYE


def sharpness(image: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image: low for blurred or upscaled photos.

    Scale-dependent, so only compare crops of the same size (the pipeline's 256 crops).
    """
    gray = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def yaw_degrees(landmarks: np.ndarray) -> float:
    """Head yaw from where the nose tip sits between the two jaw ends (0 = frontal).

    Measured along the jaw-to-jaw axis, so an in-plane tilt does not read as yaw; the
    head is taken as a cylinder, so the fraction maps to an angle through arcsin.
    Positive when the nose is nearer the image-right jaw end.
    """
    points = np.asarray(landmarks, np.float64)
    axis = points[JAW_LEFT_END] - points[JAW_RIGHT_END]
    fraction = np.dot(points[NOSE_TIP] - points[JAW_RIGHT_END], axis) / np.dot(axis, axis)
    return float(np.degrees(np.arcsin(np.clip(2.0 * fraction - 1.0, -1.0, 1.0))))


def roll_degrees(landmarks: np.ndarray) -> float:
    """In-plane tilt of the line through the two eye centres (0 = level; image y is down)."""
    points = np.asarray(landmarks, np.float64)
    dx, dy = points[LEFT_EYE].mean(axis=0) - points[RIGHT_EYE].mean(axis=0)
    return float(np.degrees(np.arctan2(dy, dx)))


def eye_aspect_ratio(landmarks: np.ndarray) -> float:
    """Mean eye aspect ratio of both eyes (Soukupova & Cech 2016): ~0.3 open, < 0.2 closed."""
    points = np.asarray(landmarks, np.float64)

    def ratio(eye):
        p = points[eye]
        vertical = np.linalg.norm(p[1] - p[5]) + np.linalg.norm(p[2] - p[4])
        return vertical / (2.0 * np.linalg.norm(p[0] - p[3]))

    return float((ratio(RIGHT_EYE) + ratio(LEFT_EYE)) / 2.0)


# A face box larger than this is shrunk to it before measuring detail: detail is then
# compared at one scale, whatever the photo's resolution (a smaller face keeps its own).
DETAIL_SIDE = 64


def face_detail(image: np.ndarray, box) -> float:
    """Sharpness of the face in `box` = (x, y, w, h), comparable between faces of any size.

    The box (clipped to the photo) is shrunk to at most `DETAIL_SIDE` px and the standard
    deviation of its Laplacian divided by that of its grey levels: a ratio, so neither
    the face's size nor its contrast or exposure changes it, only blur does (~0.5 for a
    sharp face at 64 px, ~0.1 after 8x down- and upsampling).
    """
    x, y, width, height = (int(round(v)) for v in box)
    x0, y0 = max(x, 0), max(y, 0)
    patch = np.ascontiguousarray(image[y0 : y + height, x0 : x + width])
    if patch.shape[0] < 3 or patch.shape[1] < 3:
        return 0.0
    gray = cv2.cvtColor(patch, cv2.COLOR_RGB2GRAY).astype(np.float32)
    scale = min(1.0, DETAIL_SIDE / max(gray.shape))
    if scale < 1.0:
        size = (max(round(gray.shape[1] * scale), 3), max(round(gray.shape[0] * scale), 3))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(gray, cv2.CV_32F).std() / (gray.std() + 1.0))
