"""What a restored clip measured: frames, timing, tracks, flicker and identity to the guide.

Flicker here is measured in each track's own crop window, which follows the face, so the
face's motion is compensated by the tracker's estimate of it (a test clip with known
motion measures it exactly instead, with `measures.face_crop`). The restored crops'
flicker is given against the degraded crops' in the same windows. Identity distances
(dlib's 128-D embedding, below 0.6 = same person) of the restored face to its track's
guide are sampled every `identity_every` frames: one embedding costs ~0.2 s on this CPU.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np

from gfrnet_tf.io.paths import printable
from gfrnet_tf.video.identity import IdentityEmbedder, identity_distance
from gfrnet_tf.video.measures import Flicker, RunningStats
from gfrnet_tf.video.streaming import RestoredFrame

DEFAULT_IDENTITY_EVERY = 10


@dataclasses.dataclass
class ClipReport:
    """One restored clip, for a one-line summary (`describe`) or a JSON record."""

    source: str
    destination: str
    frames: int = 0
    rate: Fraction = Fraction(0)
    variable_rate: bool = False
    audio_streams: int = 0
    dropped_audio: tuple = ()
    frames_with_faces: int = 0
    tracks: int = 0
    detections: int = 0
    flicker_restored: float = float("nan")
    flicker_input: float = float("nan")
    identity: RunningStats | None = None
    seconds: float = 0.0
    people: dict = dataclasses.field(default_factory=dict)  # track -> person ('' = nobody)

    def describe(self) -> str:
        timing = f"{float(self.rate):.3g} fps" + (
            ", variable rate kept" if self.variable_rate else ""
        )
        audio = f"{self.audio_streams} audio stream(s) copied"
        if self.dropped_audio:
            audio += f", not {', '.join(self.dropped_audio)} (mp4 cannot hold them)"
        parts = [
            f"{printable(self.source)}: restored {self.frames} frames ({timing}, {audio})",
            f"faces in {self.frames_with_faces}, {self.tracks} track(s), "
            f"{self.detections} detections",
            f"flicker {self.flicker_restored:.2f} vs {self.flicker_input:.2f} in the input",
        ]
        if self.identity is not None and self.identity.count:
            parts.append(
                f"identity distance to guide {self.identity.mean:.3f} "
                f"+- {self.identity.std:.3f} ({self.identity.count} frames)"
            )
        if self.people:
            parts.append(
                "tracks: "
                + ", ".join(
                    f"{track} {person or 'nobody known (left as is)'}"
                    for track, person in sorted(self.people.items())
                )
            )
        parts.append(f"{self.frames / max(self.seconds, 1e-9):.1f} frames/s")
        return "; ".join(parts)


class ClipMeasures:
    """Accumulates a `ClipReport`'s measures frame by frame, in constant memory.

    `identity`: an `IdentityEmbedder`, or None to skip identity; `guides` are the guide
    crops (indexed as the tracks' guide choice) and `margin` the crops' margin.
    """

    def __init__(
        self,
        guides,
        margin: float,
        identity: IdentityEmbedder | None = None,
        identity_every: int = DEFAULT_IDENTITY_EVERY,
    ):
        self.margin = margin
        self.identity = identity
        self.identity_every = identity_every
        self._guides = list(guides)
        self._guide_embeddings = {}
        self.distances = RunningStats()
        self.restored_flicker, self.input_flicker = Flicker(), Flicker()
        self.tracks = 0  # ids count up from 0 in the order tracks first appear
        self.frames_with_faces = 0

    def add(self, restored: RestoredFrame) -> None:
        faces = restored.faces
        self.frames_with_faces += bool(faces)
        self.tracks = max([self.tracks] + [face.track + 1 for face in faces])
        self.restored_flicker.add({face.track: face.restored for face in faces})
        self.input_flicker.add({face.track: face.degraded for face in faces})
        if (
            self.identity is not None
            and self.identity_every
            and (restored.frame.index % self.identity_every == 0)
        ):
            for face in faces:
                self.distances.add(
                    identity_distance(
                        self.identity.embed(face.restored, self.margin),
                        self._guide_embedding(face.guide),
                    )
                )

    def _guide_embedding(self, index: int) -> np.ndarray:
        if index not in self._guide_embeddings:
            self._guide_embeddings[index] = self.identity.embed(self._guides[index], self.margin)
        return self._guide_embeddings[index]

    def fill(self, report: ClipReport) -> None:
        report.frames_with_faces = self.frames_with_faces
        report.tracks = self.tracks
        report.flicker_restored = self.restored_flicker.value
        report.flicker_input = self.input_flicker.value
        report.identity = self.distances if self.identity is not None else None
