"""Faces in photos: detection, square crops, 68 landmarks and quality measures."""

from gfrnet_tf.faces.crop import CropWindow, crop_face, square_window
from gfrnet_tf.faces.detect import Face, best_face, detect_faces, detect_faces_batch
from gfrnet_tf.faces.landmarks import DlibLandmarks, FileLandmarks, LandmarksError, LandmarkSource
from gfrnet_tf.faces.quality import eye_aspect_ratio, roll_degrees, sharpness, yaw_degrees

__all__ = [
    "CropWindow",
    "DlibLandmarks",
    "Face",
    "FileLandmarks",
    "LandmarkSource",
    "LandmarksError",
    "best_face",
    "crop_face",
    "detect_faces",
    "detect_faces_batch",
    "eye_aspect_ratio",
    "roll_degrees",
    "sharpness",
    "square_window",
    "yaw_degrees",
]
