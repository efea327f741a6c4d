"""Restoring the faces of whole photos: detect, crop as in training, restore, paste back.

Every face MTCNN finds (confidence >= 0.9) is restored, each with the guide closest to
it in pose, and pasted back with a feathered edge. `aligned=True` takes the photo itself
as one face crop (a square, resized to the model size and back), for 256x256 crops.
"""

from __future__ import annotations

import dataclasses
import importlib.util

import cv2
import numpy as np

from gfrnet_tf.errors import BadImageError, MissingDependencyError, NoFaceError
from gfrnet_tf.faces import DlibLandmarks, crop_face, detect_faces
from gfrnet_tf.faces.crop import DEFAULT_MARGIN
from gfrnet_tf.people.pose import choose_guide
from gfrnet_tf.restoration.paste import paste_face
from gfrnet_tf.restoration.restorer import Restoration


class PoseLandmarks:
    """Landmarks for choosing guides: dlib's 68 points if installed, else MTCNN's 5.

    Five points (eyes, nose tip, mouth corners) already tell frontal from turned or
    tilted faces; dlib's 68 add the jaw line and the mouth shape.
    """

    def __init__(self):
        try:
            self._dlib = DlibLandmarks() if importlib.util.find_spec("dlib") else None
        except MissingDependencyError:  # dlib without its models package
            self._dlib = None
        self.name = "dlib 68 points" if self._dlib else "MTCNN 5 points (dlib not installed)"

    def __call__(self, image: np.ndarray, face) -> np.ndarray:
        return self._dlib.locate(image, face.box) if self._dlib else face.keypoints


@dataclasses.dataclass(frozen=True)
class Guide:
    """A guide photo's face crop at model size and its pose landmarks (None: not needed)."""

    source: str
    crop: np.ndarray
    landmarks: np.ndarray | None


@dataclasses.dataclass(frozen=True)
class RestoredFace:
    """One face of a photo: its degraded crop, the guide used and the model's outputs."""

    degraded: np.ndarray
    guide: Guide
    result: Restoration  # single images, no batch axis
    distances: list[float]


class PhotoRestorer:
    """Runs a restorer (see `restorer.load_restorer`) on photos with a set of guides.

    `image_size`: the model's input size; None (aligned only) keeps each crop's own size.
    """

    def __init__(
        self,
        restorer,
        image_size: int | None,
        margin: float = DEFAULT_MARGIN,
        aligned: bool = False,
    ):
        self.restorer = restorer
        self.image_size = image_size
        self.margin = margin
        self.aligned = aligned
        self.pose = PoseLandmarks()
        self.guides: list[Guide] = []

    def add_guide(self, photo: np.ndarray, source, pose: bool) -> Guide:
        """Crops the guide's (most confident) face like a training guide.

        `pose`: also locate its landmarks, needed when there are several guides to choose from.
        """
        crop, landmarks, _ = self._crops(photo, source, pose)[0]
        guide = Guide(str(source), crop, landmarks)
        self.guides.append(guide)
        return guide

    def restore(self, photo: np.ndarray, source) -> tuple[np.ndarray, list[RestoredFace]]:
        """The photo with every face restored, and per face what was done."""
        result, faces = photo, []
        for crop, landmarks, window in self._crops(photo, source, pose=len(self.guides) > 1):
            face = self._restore_crop(crop, landmarks)
            faces.append(face)
            if window is None:  # aligned: the crop is the photo
                result = _resize(face.result.restored, photo.shape[1], photo.shape[0])
            else:
                box = (window.x0, window.y0, window.x0 + window.side, window.y0 + window.side)
                result = paste_face(result, face.result.restored, box)
        return result, faces

    def _restore_crop(self, crop: np.ndarray, landmarks) -> RestoredFace:
        if landmarks is None:
            index, distances = 0, []
        else:
            index, distances = choose_guide(landmarks, [g.landmarks for g in self.guides])
        guide = self.guides[index]
        # Aligned crops at their own size may differ from the guide's: the face's size rules.
        guide_crop = _resize(guide.crop, crop.shape[1], crop.shape[0])
        batch = self.restorer(crop[None], guide_crop[None])
        single = Restoration(
            batch.restored[0], batch.warped_guide[0], None if batch.flow is None else batch.flow[0]
        )
        return RestoredFace(crop, dataclasses.replace(guide, crop=guide_crop), single, distances)

    def _crops(self, photo: np.ndarray, source, pose: bool):
        """`[(crop, pose landmarks or None, crop window or None)]`, most confident face first."""
        if self.aligned:
            height, width = photo.shape[:2]
            if height != width:
                raise BadImageError(
                    source, f"--aligned needs square face crops, got {width}x{height}"
                )
            size = self.image_size or width
            crop = _resize(photo, size, size)
            return [(crop, self.pose(crop, _faces(crop, source)[0]) if pose else None, None)]
        crops = []
        for face in _faces(photo, source):
            crop, window = crop_face(photo, face.box, self.margin, self.image_size)
            crops.append((crop, self.pose(photo, face) if pose else None, window))
        return crops


def _faces(photo: np.ndarray, source) -> list:
    faces = detect_faces(photo)
    if not faces:
        raise NoFaceError(source, "no face found (MTCNN, confidence >= 0.9)")
    return faces


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    if image.shape[:2] == (height, width):
        return image
    shrinking = width < image.shape[1]
    return cv2.resize(
        image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    )
