"""Following faces from frame to frame between detections, so crops do not jitter.

MTCNN runs every `detect_every` frames, and at once when a track is lost or was missed.
In between, each face is followed by pyramidal Lucas-Kanade optical flow of corner
points inside its box: the box and its 5 landmarks move by the similarity (shift,
scale, rotation) fitted to the points that pass a forward-backward check, with RANSAC.
Per-frame detections wobble by a few pixels even on a still face; flow between two
frames moves the box by the face's own motion.

At a detection, a face that overlaps a track (IoU >= `MIN_OVERLAP`) pulls the track
`correction` of the way towards it (a full jump would show as a jerk of the crop; the
remaining drift is corrected at the next detections), a face that overlaps none starts
a track, and a track that no face overlaps `max_misses` detections in a row, or that
flow lost, ends. Track ids are never reused, so a choice made per track (its guide)
is made once.
"""

from __future__ import annotations

import dataclasses
import itertools

import cv2
import numpy as np

from gfrnet_tf.faces.detect import Face, detect_faces

DEFAULT_DETECT_EVERY = 10
DEFAULT_CORRECTION = 0.5
MIN_OVERLAP = 0.3
MIN_POINTS = 6
MAX_CORNERS = 64
FORWARD_BACKWARD_PX = 1.0
# Scale change per frame beyond which the fit is taken as a failure rather than a zoom.
MAX_SCALE_STEP = 1.25
_FLOW = dict(
    winSize=(15, 15),
    maxLevel=3,
    criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03),
)


@dataclasses.dataclass(frozen=True)
class TrackedFace:
    """A face in one frame: `box` = (x, y, width, height), landmarks `[5, 2]` (x, y).

    `detection` is the detector's face when this frame started the track (for choices
    that need its full landmarks), else None.
    """

    track: int
    box: tuple[float, float, float, float]
    keypoints: np.ndarray
    detection: Face | None = None


@dataclasses.dataclass
class _Track:
    id: int
    centre: np.ndarray  # (x, y)
    size: np.ndarray  # (width, height)
    keypoints: np.ndarray
    points: np.ndarray  # float32 [K, 1, 2], the corners followed by flow
    misses: int = 0
    lost: bool = False

    def box(self) -> tuple[float, float, float, float]:
        x, y = self.centre - self.size / 2
        return float(x), float(y), float(self.size[0]), float(self.size[1])


class FaceTracker:
    """Call `update(frame)` on every frame of a clip, in order; returns its faces.

    `detect`: `image -> [Face]` (MTCNN by default; tests may pass their own).
    """

    def __init__(
        self,
        detect=detect_faces,
        detect_every: int = DEFAULT_DETECT_EVERY,
        correction: float = DEFAULT_CORRECTION,
        max_misses: int = 2,
    ):
        self.detect = detect
        self.detect_every = max(int(detect_every), 1)
        self.correction = correction
        self.max_misses = max_misses
        self.detections = 0  # detector calls so far
        self._tracks: list[_Track] = []
        self._ids = itertools.count()
        self._previous = None
        self._since_detection = None

    def update(self, image: np.ndarray) -> list[TrackedFace]:
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        if self._previous is not None:
            for track in self._tracks:
                track.lost = not self._follow(track, self._previous, gray)
        self._previous = gray
        started = {}
        if self._detection_due():
            started = self._correct(gray, self.detect(image))
        self._tracks = [t for t in self._tracks if not t.lost]
        return [
            TrackedFace(t.id, t.box(), t.keypoints.copy(), started.get(t.id)) for t in self._tracks
        ]

    def _detection_due(self) -> bool:
        due = (
            self._since_detection is None
            or self._since_detection + 1 >= self.detect_every
            or any(t.lost or t.misses for t in self._tracks)
        )
        self._since_detection = 0 if due else self._since_detection + 1
        return due

    def _correct(self, gray: np.ndarray, faces: list[Face]) -> dict[int, Face]:
        """Matches detections to tracks, corrects or starts tracks; the started ones' faces."""
        self.detections += 1
        pairs = sorted(
            (
                (_iou(t.box(), f.box), i, j)
                for i, t in enumerate(self._tracks)
                for j, f in enumerate(faces)
            ),
            reverse=True,
        )
        matched_tracks, matched_faces = set(), set()
        for overlap, i, j in pairs:
            if overlap < MIN_OVERLAP or i in matched_tracks or j in matched_faces:
                continue
            matched_tracks.add(i)
            matched_faces.add(j)
            track, face = self._tracks[i], faces[j]
            gain = 1.0 if track.lost else self.correction
            centre, size = _centre_size(face.box)
            track.centre = track.centre + gain * (centre - track.centre)
            track.size = track.size + gain * (size - track.size)
            track.keypoints = track.keypoints + gain * (face.keypoints - track.keypoints)
            track.points = _corners(gray, track.box())
            track.misses, track.lost = 0, track.points is None
        for i, track in enumerate(self._tracks):
            if i not in matched_tracks:
                track.misses += 1
                track.lost = track.lost or track.misses >= self.max_misses
        started = {}
        for j, face in enumerate(faces):
            points = _corners(gray, face.box)
            if j in matched_faces or points is None:
                continue
            centre, size = _centre_size(face.box)
            track = _Track(next(self._ids), centre, size, face.keypoints.astype(np.float64), points)
            self._tracks.append(track)
            started[track.id] = face
        return started

    @staticmethod
    def _follow(track: _Track, previous: np.ndarray, gray: np.ndarray) -> bool:
        """Moves `track` by the face's motion from `previous` to `gray`; False when lost."""
        moved, status, _ = cv2.calcOpticalFlowPyrLK(previous, gray, track.points, None, **_FLOW)
        back, back_status, _ = cv2.calcOpticalFlowPyrLK(gray, previous, moved, None, **_FLOW)
        error = np.linalg.norm((back - track.points).reshape(-1, 2), axis=1)
        good = (status.ravel() == 1) & (back_status.ravel() == 1) & (error < FORWARD_BACKWARD_PX)
        if good.sum() < MIN_POINTS:
            return False
        matrix, inliers = cv2.estimateAffinePartial2D(
            track.points[good], moved[good], method=cv2.RANSAC, ransacReprojThreshold=1.0
        )
        if matrix is None or inliers.sum() < MIN_POINTS:
            return False
        scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
        if not 1 / MAX_SCALE_STEP < scale < MAX_SCALE_STEP:
            return False
        track.centre = matrix[:, :2] @ track.centre + matrix[:, 2]
        track.size = track.size * scale
        track.keypoints = track.keypoints @ matrix[:, :2].T + matrix[:, 2]
        track.points = moved[good][inliers.ravel() == 1]
        if len(track.points) < 2 * MIN_POINTS:  # thinning out: pick fresh corners in the box
            track.points = _corners(gray, track.box())
        return track.points is not None


def _centre_size(box) -> tuple[np.ndarray, np.ndarray]:
    x, y, width, height = box
    return np.array([x + width / 2, y + height / 2]), np.array([width, height], np.float64)


def _corners(gray: np.ndarray, box) -> np.ndarray | None:
    """Good corners to follow in the inner 80 % of `box`; None when there are too few."""
    x, y, width, height = box
    mask = np.zeros_like(gray)
    x0, y0 = max(int(x + 0.1 * width), 0), max(int(y + 0.1 * height), 0)
    x1, y1 = int(x + 0.9 * width), int(y + 0.9 * height)
    mask[y0 : max(y1, y0), x0 : max(x1, x0)] = 255
    corners = cv2.goodFeaturesToTrack(
        gray, MAX_CORNERS, qualityLevel=0.01, minDistance=max(2.0, width / 16), mask=mask
    )
    if corners is None or len(corners) < MIN_POINTS:
        return None
    return corners.astype(np.float32)


def _iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    width = min(ax + aw, bx + bw) - max(ax, bx)
    height = min(ay + ah, by + bh) - max(ay, by)
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    return inter / (aw * ah + bw * bh - inter)
