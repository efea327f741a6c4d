"""Restoring the faces of a clip frame by frame as it streams past.

Frames go through three stages chained as generators: the tracker (detections every few
frames, optical flow in between), the smoother (a centred window over each track's box
and landmarks) and the restorer (sub-pixel crops, see `subpixel`, of `batch_size` faces
per model call, pasted back with the photos' feathered edge). Memory holds the
smoother's window and one batch of frames, whatever the clip's length. Each track gets
its guide once, when it starts: the guide closest in pose to its first detection, as a
photo's face would. Frames without a face leave unchanged, and no pixel outside a face's
crop window is ever changed.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Iterator

import numpy as np

from gfrnet_tf.faces import detect_faces
from gfrnet_tf.people.pose import choose_guide
from gfrnet_tf.restoration.photos import PhotoRestorer
from gfrnet_tf.video import subpixel
from gfrnet_tf.video.reader import Frame
from gfrnet_tf.video.smoothing import DEFAULT_RADIUS, TrackSmoother
from gfrnet_tf.video.tracking import DEFAULT_DETECT_EVERY, FaceTracker, TrackedFace

DEFAULT_BATCH_SIZE = 8


@dataclasses.dataclass(frozen=True)
class RestoredFace:
    """One face of one frame: its track, crop window, guide index and both crops."""

    track: int
    window: subpixel.Window
    guide: int
    degraded: np.ndarray
    restored: np.ndarray


@dataclasses.dataclass(frozen=True)
class RestoredFrame:
    """A frame as it leaves: the source frame, the restored pixels and its faces."""

    frame: Frame
    image: np.ndarray
    faces: list[RestoredFace]


class VideoRestorer:
    """Restores clips with a `PhotoRestorer`'s model, guides, crop margin and size.

    `detect_every=1, smoothing_radius=0` is per-frame restoration (a detection per frame,
    nothing carried over), the baseline the tracking is measured against. `choose(image,
    face)` gives a new track's guide index, or None to leave the track as it is (the
    library's person per track, `video.people`); by default the guide closest in pose.
    """

    def __init__(
        self,
        photos: PhotoRestorer,
        detect_every: int = DEFAULT_DETECT_EVERY,
        smoothing_radius: int = DEFAULT_RADIUS,
        batch_size: int = DEFAULT_BATCH_SIZE,
        detect=detect_faces,
        choose=None,
    ):
        if photos.image_size is None or photos.aligned:
            raise ValueError(
                "video restoration needs a model size and detected (not aligned) faces"
            )
        if not photos.guides:
            raise ValueError("add at least one guide first")
        self.photos = photos
        self.detect_every = detect_every
        self.smoothing_radius = smoothing_radius
        self.batch_size = max(int(batch_size), 1)
        self.detect = detect
        self.choose = choose or self._choose_guide
        self.detections = 0  # detector calls of the last clip

    def restore_frames(self, frames: Iterable[Frame]) -> Iterator[RestoredFrame]:
        """The clip's frames, restored, in order; one clip per call."""
        tracker = FaceTracker(self.detect, self.detect_every)
        smoother = TrackSmoother(self.smoothing_radius)
        guides: dict[int, int] = {}
        pending = []
        for frame in frames:
            faces = tracker.update(frame.image)
            self.detections = tracker.detections
            for face in faces:
                if face.detection is not None:
                    guides[face.track] = self.choose(frame.image, face)
            for ready in smoother.push(frame, faces):
                pending.append(ready)
                if len(pending) >= self.batch_size or _faces(pending) >= self.batch_size:
                    yield from self._restore(pending, guides)
                    pending = []
        pending.extend(smoother.flush())
        yield from self._restore(pending, guides)

    def _choose_guide(self, image: np.ndarray, face: TrackedFace) -> int:
        guides = self.photos.guides
        if len(guides) == 1:
            return 0
        landmarks = self.photos.pose(image, face.detection)
        return choose_guide(landmarks, [guide.landmarks for guide in guides])[0]

    def _restore(self, pending, guides: dict[int, int]) -> Iterator[RestoredFrame]:
        photos = self.photos
        jobs = []  # (frame position in `pending`, its face before restoration)
        for position, (frame, faces) in enumerate(pending):
            for face in faces:
                if guides.get(face.track) is None:
                    continue  # a track of nobody known: left as it is
                window = subpixel.window_around(face.box, photos.margin, photos.image_size)
                jobs.append(
                    (
                        position,
                        RestoredFace(
                            face.track,
                            window,
                            guides[face.track],
                            subpixel.crop(frame.image, window),
                            None,
                        ),
                    )
                )
        restored = []
        for start in range(0, len(jobs), self.batch_size):
            chunk = [face for _, face in jobs[start : start + self.batch_size]]
            result = photos.restorer(
                np.stack([face.degraded for face in chunk]),
                np.stack([photos.guides[face.guide].crop for face in chunk]),
            )
            restored.extend(result.restored)
        images = [frame.image for frame, _ in pending]
        faces = [[] for _ in pending]
        for (position, face), pixels in zip(jobs, restored):
            images[position] = subpixel.paste(images[position], pixels, face.window)
            faces[position].append(dataclasses.replace(face, restored=pixels))
        for (frame, _), image, frame_faces in zip(pending, images, faces):
            yield RestoredFrame(frame, image, frame_faces)


def _faces(pending) -> int:
    return sum(len(faces) for _, faces in pending)
