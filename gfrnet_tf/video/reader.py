"""Decoding a video frame by frame, with its audio packets handed on undecoded.

PyAV (FFmpeg inside its wheel) demuxes the file in its stored order; each decoded video
frame is yielded as uint8 RGB with its presentation timestamp, and each audio packet goes
to a callback, so a writer can copy it while the frames are still being restored. Only one
frame (plus the decoder's own threads) is in memory at a time, whatever the clip's length.
A file that cannot be opened, has no video, decodes to no frame, or ends before the frame
count its header declares is a `BadVideoError` naming it.
"""

from __future__ import annotations

import dataclasses
import os
from fractions import Fraction
from typing import Callable, Iterator

import av
import numpy as np

from gfrnet_tf.errors import BadVideoError, first_line
from gfrnet_tf.io.images import DEFAULT_MAX_PIXELS

# How much shorter than its declared duration a clip without a frame count may decode.
TRUNCATION_TOLERANCE = 0.1


@dataclasses.dataclass(frozen=True)
class Frame:
    """One decoded frame: its position in the clip, RGB pixels and timestamp (`time_base` units)."""

    index: int
    image: np.ndarray
    pts: int


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What a writer needs to reproduce the clip's timing and size."""

    width: int
    height: int
    rate: Fraction  # frames per second (the average over the clip)
    time_base: Fraction
    declared_frames: int  # 0 when the container does not say
    declared_seconds: float  # the stream's (else the container's) duration; 0 if unknown
    audio: tuple  # PyAV audio streams, for copying their packets


class VideoReader:
    """Opens `path` (any name: the file is passed to FFmpeg as an open stream).

    Use as a context manager; `frames(on_audio)` decodes once, front to back.
    """

    def __init__(self, path, max_pixels: int = DEFAULT_MAX_PIXELS):
        self.source = path
        try:
            self._file = open(path, "rb")
        except OSError as error:
            raise BadVideoError(path, f"cannot open ({error.strerror or error})") from error
        try:
            self._container = av.open(self._file, "r")
        # FFmpeg's errors, and OSError from the Python file's seek on an empty file.
        except (av.FFmpegError, OSError, ValueError) as error:
            empty = os.fstat(self._file.fileno()).st_size == 0
            self._file.close()
            raise BadVideoError(
                path, "empty file" if empty else f"cannot read as a video ({ffmpeg_problem(error)})"
            ) from error
        try:
            self.info = self._info(max_pixels)
        except BadVideoError:
            self.close()
            raise

    def _info(self, max_pixels: int) -> VideoInfo:
        if not self._container.streams.video:
            raise BadVideoError(self.source, "no video stream")
        stream = self._stream = self._container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        if width <= 0 or height <= 0:
            raise BadVideoError(self.source, "the video stream has no frame size")
        if width * height > max_pixels:
            raise BadVideoError(self.source, f"{width}x{height} frames exceed {max_pixels} pixels")
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate:
            raise BadVideoError(self.source, "the video stream has no frame rate")
        stream.thread_type = "AUTO"
        time_base = Fraction(stream.time_base or 1 / rate)
        if stream.duration:
            seconds = float(stream.duration * time_base)
        else:
            seconds = (self._container.duration or 0) / av.time_base
        return VideoInfo(
            width,
            height,
            Fraction(rate),
            time_base,
            int(stream.frames or 0),
            seconds,
            tuple(self._container.streams.audio),
        )

    def frames(
        self, on_audio: Callable[[av.Packet], None] = lambda packet: None
    ) -> Iterator[Frame]:
        """Every video frame in presentation order; audio packets go to `on_audio` as met."""
        index, first_pts, last_pts = 0, None, None
        ticks_per_frame = 1 / (self.info.rate * self.info.time_base)
        try:
            for packet in self._container.demux(self._stream, *self.info.audio):
                if packet.stream.type == "audio":
                    if packet.dts is not None:  # None: the demuxer's end-of-stream marker
                        on_audio(packet)
                    continue
                for decoded in packet.decode():
                    pts = decoded.pts
                    if pts is None:  # raw streams carry no timestamps: one frame per tick
                        pts = round(index * ticks_per_frame)
                    if last_pts is not None and pts <= last_pts:
                        raise BadVideoError(
                            self.source,
                            f"frame {index} does not advance in time "
                            f"(timestamp {pts} after {last_pts})",
                        )
                    yield Frame(index, decoded.to_ndarray(format="rgb24"), pts)
                    index, last_pts = index + 1, pts
                    first_pts = pts if first_pts is None else first_pts
        except av.FFmpegError as error:
            raise BadVideoError(
                self.source, f"corrupt or truncated after {index} frames ({ffmpeg_problem(error)})"
            ) from error
        if index == 0:
            raise BadVideoError(self.source, "the video stream has no frames")
        self._check_complete(
            index, float((last_pts - first_pts) * self.info.time_base + 1 / self.info.rate)
        )

    def _check_complete(self, frames: int, seconds: float) -> None:
        """A clip that ends early: fewer frames, or (when the count is not stored, as in
        Matroska) a much shorter time than the header declares. The time is compared
        loosely, since a container's duration also covers audio that may run longer."""
        info = self.info
        if frames < info.declared_frames:
            raise BadVideoError(
                self.source,
                f"truncated: {frames} of the {info.declared_frames} "
                "frames its header declares could be decoded",
            )
        if not info.declared_frames and seconds < info.declared_seconds - max(
            0.5, TRUNCATION_TOLERANCE * info.declared_seconds
        ):
            raise BadVideoError(
                self.source,
                f"truncated: its frames end after {seconds:.2f} s "
                f"of the {info.declared_seconds:.2f} s its header "
                "declares",
            )

    def close(self) -> None:
        self._container.close()
        self._file.close()

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def ffmpeg_problem(error: Exception) -> str:
    """FFmpeg's own words for `error`, without the errno and file name PyAV adds."""
    return getattr(error, "strerror", None) or first_line(error)
