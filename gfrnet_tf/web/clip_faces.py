"""Where a clip's faces are shown: each of the library's face tracks at one frame.

The library describes a track by its sharpest frames but keeps of them only the box, not
the frame (`FaceRecord.frames` is its first and last), so the page shows a track at its
middle frame. Its box there comes from following the clip again as the library's
restoring pass does (`video.tracking.FaceTracker` with the library's detector and
`detect_every`: the same frames give the same track ids), once per run and only as far
as the last middle frame. The pictures are then cut from the uploaded clip and from the
restored one (`frames_at`). Both read a frame at a time: a clip's frames are never held.
Needs PyAV (the `video` extra), as clips do.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np

from gfrnet_tf.faces import detect_faces
from gfrnet_tf.people import FaceRecord
from gfrnet_tf.video.reader import VideoReader
from gfrnet_tf.video.tracking import FaceTracker


def locate_tracks(path, tracks: Iterable[FaceRecord], detect_every: int) -> dict[int, tuple]:
    """`{track: (frame, box)}`: each track's box at its middle frame (or the first frame
    after it where the tracker has it); a track not met again by its last frame is left
    out (no picture, rather than another face's)."""
    middle = {t.index: (t.frames[0] + t.frames[1]) // 2 for t in tracks}
    last = max((t.frames[1] for t in tracks), default=-1)
    found: dict[int, tuple] = {}
    tracker = FaceTracker(detect_faces, detect_every)
    with VideoReader(path) as reader:
        for frame in reader.frames():
            if frame.index > last or len(found) == len(middle):
                break
            for face in tracker.update(frame.image):
                if face.track in middle and face.track not in found:
                    if frame.index >= middle[face.track]:
                        found[face.track] = (frame.index, face.box)
    return found


def frames_at(path, indices: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
    """`(index, RGB image)` of the clip's frames at `indices`, in order, one at a time;
    decoding stops after the last one."""
    wanted = set(indices)
    if not wanted:
        return
    with VideoReader(path) as reader:
        for frame in reader.frames():
            if frame.index in wanted:
                yield frame.index, frame.image
                wanted.discard(frame.index)
                if not wanted:
                    return
