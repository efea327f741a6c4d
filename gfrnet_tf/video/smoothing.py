"""Smoothing each track's box and landmarks over time, `radius` frames each way.

Per coordinate, a straight line is fitted (least squares, weights falling linearly with
the distance in frames) to the track's values in the window around a frame, and its value
at that frame is used. A centred line fit passes a steady motion through without lag
and keeps its shape where the window is cut short at a track's start or end, where a
plain average would drag the box behind a moving face. The price is a delay: a frame
leaves `radius` frames after it came in, so `radius` frames are held in memory.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Any

import numpy as np

from gfrnet_tf.video.tracking import TrackedFace

DEFAULT_RADIUS = 3


class TrackSmoother:
    """`push(item, faces)` per frame, in order, then `flush()`; both return the frames
    ready to leave, as `(item, smoothed faces)`, in order."""

    def __init__(self, radius: int = DEFAULT_RADIUS):
        self.radius = max(int(radius), 0)
        # (item, {track: state}) for the last 2 * radius + 1 frames; the middle one leaves next.
        self._window: collections.deque = collections.deque()
        self._next = 0  # position in the window of the next frame to leave

    def push(self, item: Any, faces: list[TrackedFace]) -> list[tuple[Any, list[TrackedFace]]]:
        self._window.append((item, {face.track: face for face in faces}))
        ready = []
        while len(self._window) - self._next > self.radius:
            ready.append(self._leave())
        return ready

    def flush(self) -> list[tuple[Any, list[TrackedFace]]]:
        return [self._leave() for _ in range(len(self._window) - self._next)]

    def _leave(self) -> tuple[Any, list[TrackedFace]]:
        item, faces = self._window[self._next]
        smoothed = [self._smoothed(face) for face in faces.values()]
        self._window[self._next] = (None, faces)  # the pixels are no longer needed here
        self._next += 1
        if self._next > self.radius:
            self._window.popleft()
            self._next -= 1
        return item, smoothed

    def _smoothed(self, face: TrackedFace) -> TrackedFace:
        offsets, states = [], []
        for position, (_, faces) in enumerate(self._window):
            other = faces.get(face.track)
            if other is not None:
                offsets.append(position - self._next)
                states.append(_state(other))
        state = centred_line_fit(np.array(offsets, np.float64), np.array(states), self.radius)
        return dataclasses.replace(
            face, box=tuple(float(v) for v in state[:4]), keypoints=state[4:].reshape(-1, 2)
        )


def centred_line_fit(offsets: np.ndarray, values: np.ndarray, radius: int) -> np.ndarray:
    """Value at offset 0 of the weighted line fit to `values` `[N, D]` at `offsets` `[N]`."""
    weights = 1.0 - np.abs(offsets) / (radius + 1)
    s0, s1, s2 = weights.sum(), (weights * offsets).sum(), (weights * offsets**2).sum()
    t0 = (weights[:, None] * values).sum(axis=0)
    t1 = (weights[:, None] * offsets[:, None] * values).sum(axis=0)
    determinant = s0 * s2 - s1 * s1
    if determinant <= 1e-9 * max(s0 * s2, 1.0):  # a single frame, or all on one side at one offset
        return t0 / s0
    return (s2 * t0 - s1 * t1) / determinant


def _state(face: TrackedFace) -> np.ndarray:
    return np.concatenate(
        [np.asarray(face.box, np.float64), np.asarray(face.keypoints, np.float64).ravel()]
    )
