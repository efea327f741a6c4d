"""A video file through a `VideoRestorer`: decode, restore, encode and measure as it streams.

The result is written under a temporary name beside `destination` and renamed when the
whole clip is done, so a failed or interrupted run leaves no half video. A clip in which
no frame has a face is refused like a photo without one (`NoFaceError`), with no output.
"""

from __future__ import annotations

import time
from pathlib import Path

from tqdm import tqdm

from gfrnet_tf.errors import NoFaceError
from gfrnet_tf.io.atomic import atomic_path
from gfrnet_tf.io.paths import printable
from gfrnet_tf.video.identity import IdentityEmbedder
from gfrnet_tf.video.reader import VideoReader
from gfrnet_tf.video.report import DEFAULT_IDENTITY_EVERY, ClipMeasures, ClipReport
from gfrnet_tf.video.streaming import VideoRestorer
from gfrnet_tf.video.writer import DEFAULT_CRF, VideoWriter

# Frame durations differing by more than this fraction make a clip's rate variable.
VARIABLE_RATE_TOLERANCE = 0.01


def restore_clip(
    videos: VideoRestorer,
    source,
    destination,
    *,
    crf: int = DEFAULT_CRF,
    identity: IdentityEmbedder | None = None,
    identity_every: int = DEFAULT_IDENTITY_EVERY,
    progress: bool = True,
) -> ClipReport:
    """Restores the video `source` into the mp4 `destination`; what it did and measured."""
    started = time.perf_counter()
    report = ClipReport(str(source), str(destination))
    photos = videos.photos
    measures = ClipMeasures(
        [guide.crop for guide in photos.guides], photos.margin, identity, identity_every
    )
    durations = _Durations()
    with VideoReader(source) as reader, atomic_path(destination, suffix=".mp4") as temp:
        info = reader.info
        with (
            VideoWriter(temp, info, crf, source=destination) as writer,
            tqdm(
                total=info.declared_frames or None,
                unit="frame",
                desc=printable(Path(source).name),
                disable=not progress,
                leave=False,
            ) as bar,
        ):
            for restored in videos.restore_frames(reader.frames(writer.copy_audio)):
                writer.write(restored.image, restored.frame.pts)
                measures.add(restored)
                durations.add(restored.frame.pts)
                report.frames += 1
                bar.update()
            report.dropped_audio = tuple(writer.dropped_audio)
        if not measures.frames_with_faces:
            raise NoFaceError(
                source,
                f"no face found in any of the {report.frames} frames (MTCNN, confidence >= 0.9)",
            )
    measures.fill(report)
    report.rate, report.variable_rate = info.rate, durations.variable
    report.turned = info.orientation.turns
    report.audio_streams = len(info.audio) - len(report.dropped_audio)
    report.detections = videos.detections
    report.seconds = time.perf_counter() - started
    return report


class _Durations:
    """Smallest and largest gap between consecutive timestamps, to tell a variable rate."""

    def __init__(self):
        self.last = None
        self.shortest = self.longest = None

    def add(self, pts: int) -> None:
        if self.last is not None:
            gap = pts - self.last
            self.shortest = gap if self.shortest is None else min(self.shortest, gap)
            self.longest = gap if self.longest is None else max(self.longest, gap)
        self.last = pts

    @property
    def variable(self) -> bool:
        return self.shortest is not None and (
            self.longest - self.shortest > VARIABLE_RATE_TOLERANCE * self.shortest
        )
