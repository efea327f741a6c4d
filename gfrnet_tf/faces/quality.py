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
