"""A clip's face tracks as people: each track matched to a person, restored with their guide.

The analysis pass follows the clip's faces (`tracking.FaceTracker`) and, on every frame
the detector ran, describes each tracked face as a photo's face is described
(`FaceAnalyser`: 68 points, embedding, quality). A track becomes one `FaceRecord`: its
`SHARPEST_FRAMES` best frames by `FaceQuality.score` give its embedding (their mean)
and its best frame its box, landmarks and quality; `frames` are its first and last.
The decision is the photos' (`decide_faces`), made per track against the tracks that
share a frame with it (one face per person per frame). The restoring pass tracks the
clip again (the same frames and detector give the same tracks) and restores each track
with its own decision's guide; a track of nobody known is left as it is.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from gfrnet_tf.errors import GFRNetError
from gfrnet_tf.faces import detect_faces
from gfrnet_tf.people import FaceRecord, decide_faces, faces_csv_row
from gfrnet_tf.people.decision import RESTORE
from gfrnet_tf.restoration.analysis import NO_FACE, Analysis
from gfrnet_tf.restoration.batches import PhotoResult
from gfrnet_tf.restoration.photos import Guide, PhotoRestorer
from gfrnet_tf.video.clip import restore_clip
from gfrnet_tf.video.identity import optional_embedder
from gfrnet_tf.video.reader import VideoReader
from gfrnet_tf.video.report import DEFAULT_IDENTITY_EVERY
from gfrnet_tf.video.streaming import VideoRestorer
from gfrnet_tf.video.tracking import DEFAULT_DETECT_EVERY, FaceTracker
from gfrnet_tf.video.writer import DEFAULT_CRF

SHARPEST_FRAMES = 3


@dataclasses.dataclass
class _Sighting:
    frame: int
    face: FaceRecord


class _Detector:
    """MTCNN, remembering whether it ran on the current frame."""

    def __init__(self):
        self.ran = False

    def __call__(self, image):
        self.ran = True
        return detect_faces(image)


@dataclasses.dataclass(frozen=True)
class ClipStages:
    """The clip side of `restoration.library.restore_library` (its `clips` argument)."""

    detect_every: int = DEFAULT_DETECT_EVERY
    crf: int = DEFAULT_CRF
    identity_every: int = DEFAULT_IDENTITY_EVERY

    def decide(self, tracks, people, options):
        return decide_tracks(tracks, people, options)

    def analyse(self, item, analyser) -> Analysis:
        """One `FaceRecord` per face track of the clip `item`, its index the tracker's id
        (0, 1, ... in the order the tracks start; a track starts on a detection frame,
        where it is described, so the ids and the records agree)."""
        try:
            tracks = self._sightings(item, analyser)
        except GFRNetError as error:
            return Analysis(item, problem=error.problem)
        faces = tuple(
            _track_record(item.photo, track, sightings, end)
            for track, (sightings, end) in tracks.items()
        )
        return Analysis(item, faces, "" if faces else NO_FACE)

    def _sightings(self, item, analyser) -> dict[int, tuple[list[_Sighting], int]]:
        """Per track: its faces on the frames the detector ran, and its last frame."""
        detector = _Detector()
        tracker = FaceTracker(detector, self.detect_every)
        tracks: dict[int, list[_Sighting]] = {}
        last: dict[int, int] = {}
        with VideoReader(item.path) as reader:
            for frame in reader.frames():
                detector.ran = False
                faces = tracker.update(frame.image)
                last.update((face.track, frame.index) for face in faces)
                if not detector.ran or not faces:
                    continue
                records = analyser.faces_at(frame.image, [f.box for f in faces], item.photo)
                for face, record in zip(faces, records):
                    tracks.setdefault(face.track, []).append(_Sighting(frame.index, record))
        return {track: (sightings, last[track]) for track, sightings in tracks.items()}

    def restore(self, item, decisions, guides, restorer, analyser, output, settings):
        """Restores the tracks decided for restoring; `PhotoResult` with a row per track."""
        by_track = {d.face.index: d for d in decisions}
        restoring = {
            k: d for k, d in by_track.items() if d.action == RESTORE and d.guide.key in guides
        }
        rows = [faces_csv_row(d) for d in decisions if d.face.index not in restoring]
        if not restoring:
            return PhotoResult(item.photo, tuple(rows))
        keys = sorted({d.guide.key for d in restoring.values()})
        photos = PhotoRestorer(restorer, settings.image_size, settings.margin)
        photos.guides = [Guide(f"{k[0]}#{k[1]}", guides[k], None) for k in keys]
        guide_of = {track: keys.index(d.guide.key) for track, d in restoring.items()}
        videos = VideoRestorer(
            photos,
            detect_every=self.detect_every,
            batch_size=settings.batch_size,
            choose=lambda image, face: guide_of.get(face.track),
        )
        destination = Path(output.target(f"{item.output}_restored.mp4"))
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            report = restore_clip(
                videos,
                item.path,
                destination,
                crf=self.crf,
                identity=optional_embedder() if self.identity_every else None,
                identity_every=self.identity_every,
                progress=False,
            )
        except GFRNetError as error:
            failed = [faces_csv_row(d, failure=error.problem) for d in restoring.values()]
            return PhotoResult(item.photo, tuple(rows + failed))
        rows += [faces_csv_row(d) for d in restoring.values()]
        report.people = {track: d.person for track, d in by_track.items()}
        return PhotoResult(item.photo, tuple(rows), note=report.describe())


def decide_tracks(tracks, people, options):
    """Each track decided against the tracks sharing a frame with it."""
    decisions = []
    for track in tracks:
        together = [track] + [
            other
            for other in tracks
            if other is not track
            and other.frames[0] <= track.frames[1]
            and track.frames[0] <= other.frames[1]
        ]
        decisions.append(decide_faces(together, people, options)[0])
    return decisions


def _track_record(photo: str, index: int, sightings: list[_Sighting], end: int) -> FaceRecord:
    best = sorted(sightings, key=lambda s: (-s.face.quality.score, s.frame))
    top = best[:SHARPEST_FRAMES]
    embedding = np.mean([s.face.embedding for s in top], axis=0)
    sharpest = top[0]
    face = sharpest.face
    frames = (sightings[0].frame, end)
    return FaceRecord(
        photo, index, face.box, face.landmarks, embedding, face.quality, frames, sharpest.frame
    )
