"""Decoding a video frame by frame, with its audio packets handed on undecoded.

PyAV (FFmpeg inside its wheel) demuxes the file in its stored order; each decoded video
frame is yielded as uint8 RGB (converted with the stream's colour matrix and range),
turned upright as its display matrix says (`orientation`), with its presentation
timestamp; each audio packet goes to a callback, so a writer can copy it while the frames
are still being restored. Only one frame (plus the decoder's own threads) is in memory at
a time, whatever the clip's length. A file that cannot be opened, has no video, decodes
to no frame, ends before the frame count its header declares (or, a transport stream,
inside a packet), or has a frame of another size than its first or larger than
`max_pixels` (checked on every decoded frame, before it is converted) is a
`BadVideoError` naming it.
"""

from __future__ import annotations

import dataclasses
import os
from fractions import Fraction
from typing import Callable, Iterable, Iterator

import av
import numpy as np

from gfrnet_tf.errors import BadVideoError, first_line
from gfrnet_tf.io.images import DEFAULT_MAX_PIXELS
from gfrnet_tf.video.orientation import Orientation

# How much shorter than its declared duration a clip without a frame count may decode.
TRUNCATION_TOLERANCE = 0.1
# Stream tags that describe the content (not the old encoding), kept on output. An mp4's
# title reads back as "name".
DESCRIPTIVE_TAGS = {"language": "language", "title": "title", "name": "title", "comment": "comment"}
# MPEG transport streams are a sequence of fixed-size packets (188 bytes; 192 in Blu-ray
# .m2ts, 204 with Reed-Solomon bytes), each starting with this sync byte.
_TS_SYNC = 0x47
# Packet size -> offset of the sync byte (a 192-byte packet starts with a 4-byte timecode).
_TS_PACKETS = {188: 0, 192: 4, 204: 0}


@dataclasses.dataclass(frozen=True)
class Frame:
    """One decoded frame: its position in the clip, RGB pixels and timestamp (`time_base` units)."""

    index: int
    image: np.ndarray
    pts: int


@dataclasses.dataclass(frozen=True)
class Colour:
    """The stream's colour tags (FFmpeg's enum values; 2 / 0 = unspecified)."""

    space: int = 2  # the YUV matrix, e.g. 1 = BT.709
    range: int = 0  # 1 = limited (16-235), 2 = full
    primaries: int = 2
    transfer: int = 2


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What a writer needs to reproduce the clip's timing, size, orientation and tags.

    `width` x `height` is the stored frame size; the frames `VideoReader.frames` yields are
    turned by `orientation` (shown size).
    """

    width: int
    height: int
    rate: Fraction  # frames per second (the average over the clip)
    time_base: Fraction
    declared_frames: int  # 0 when the container does not say
    declared_seconds: float  # the stream's (else the container's) duration; 0 if unknown
    audio: tuple  # PyAV audio streams, for copying their packets
    orientation: Orientation = Orientation()
    colour: Colour = Colour()
    tags: dict = dataclasses.field(default_factory=dict)  # DESCRIPTIVE_TAGS of the stream


class VideoReader:
    """Opens `path` (any name: the file is passed to FFmpeg as an open stream).

    Use as a context manager; `frames(on_audio)` decodes once, front to back.
    """

    def __init__(self, path, max_pixels: int = DEFAULT_MAX_PIXELS):
        self.source = path
        self.max_pixels = max_pixels
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
            self.info = self._info()
        except BadVideoError:
            self.close()
            raise

    def _info(self) -> VideoInfo:
        if not self._container.streams.video:
            raise BadVideoError(self.source, "no video stream")
        stream = self._stream = self._container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        if width <= 0 or height <= 0:
            raise BadVideoError(self.source, "the video stream has no frame size")
        if width * height > self.max_pixels:
            raise BadVideoError(
                self.source, f"{width}x{height} frames exceed {self.max_pixels} pixels"
            )
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate:
            raise BadVideoError(self.source, "the video stream has no frame rate")
        stream.thread_type = "AUTO"
        time_base = Fraction(stream.time_base or 1 / rate)
        if stream.duration:
            seconds = float(stream.duration * time_base)
        else:
            seconds = (self._container.duration or 0) / av.time_base
        codec = stream.codec_context
        (width, height), orientation = self._probe((width, height))
        return VideoInfo(
            width,
            height,
            Fraction(rate),
            time_base,
            int(stream.frames or 0),
            seconds,
            tuple(self._container.streams.audio),
            orientation,
            Colour(codec.colorspace, codec.color_range, codec.color_primaries, codec.color_trc),
            descriptive_tags(stream),
        )

    def _probe(self, header_size) -> tuple[tuple[int, int], Orientation]:
        """The first frame's size (the header's may differ) and display matrix (PyAV shows
        it on frames, not streams), decoded by a second, short-lived demuxer so that this
        one starts at the beginning."""
        try:
            with open(self.source, "rb") as file, av.open(file, "r") as probe:
                first = next(probe.decode(probe.streams.video[0]), None)
                if first is None:
                    return header_size, Orientation()  # no frame: `frames` says so
                size = (first.width, first.height)
                self._check_size(first, 0, size)
                matrix = [bytes(d) for d in first.side_data if d.type.name == "DISPLAYMATRIX"]
        except (av.FFmpegError, OSError):
            return header_size, Orientation()  # the decode proper reports it, by frame
        try:
            return size, Orientation.from_side_data(matrix[0] if matrix else None)
        except ValueError as error:
            raise BadVideoError(self.source, str(error)) from None

    def _check_size(self, frame, index: int, expected: tuple[int, int]) -> None:
        """Every decoded frame, before its pixels are converted: a header may lie."""
        size = (frame.width, frame.height)
        if size[0] * size[1] > self.max_pixels:
            raise BadVideoError(
                self.source,
                f"frame {index} is {size[0]}x{size[1]}, more than {self.max_pixels} pixels",
            )
        if size != expected:
            raise BadVideoError(
                self.source,
                f"frame {index} is {size[0]}x{size[1]}, its first frame "
                f"{expected[0]}x{expected[1]}: a frame size that changes within a clip is "
                "not supported (cut the clip where it changes)",
            )

    def frames(
        self, on_audio: Callable[[av.Packet], None] = lambda packet: None
    ) -> Iterator[Frame]:
        """Every video frame in presentation order; audio packets go to `on_audio` as met."""
        index, first_pts, last_pts = 0, None, None
        ticks_per_frame = 1 / (self.info.rate * self.info.time_base)
        size = (self.info.width, self.info.height)
        orientation = self.info.orientation
        try:
            for packet in self._container.demux(self._stream, *self.info.audio):
                if packet.stream.type == "audio":
                    if packet.dts is not None:  # None: the demuxer's end-of-stream marker
                        on_audio(packet)
                    continue
                for decoded in packet.decode():
                    self._check_size(decoded, index, size)
                    pts = decoded.pts
                    if pts is None:  # raw streams carry no timestamps: one frame per tick
                        pts = round(index * ticks_per_frame)
                    if last_pts is not None and pts <= last_pts:
                        raise BadVideoError(
                            self.source,
                            f"frame {index} does not advance in time "
                            f"(timestamp {pts} after {last_pts})",
                        )
                    image = orientation.upright(decoded.to_ndarray(format="rgb24"))
                    yield Frame(index, image, pts)
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
        cut = _transport_stream_cut(self.source)
        if cut:
            raise BadVideoError(
                self.source,
                f"truncated: it ends inside a {cut}-byte transport-stream packet, after "
                f"{frames} frames ({seconds:.2f} s); a transport stream does not state its "
                "length, so how much is missing is unknown",
            )
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


def descriptive_tags(stream) -> dict:
    """The `DESCRIPTIVE_TAGS` of a PyAV stream, under the names a writer sets."""
    return {
        DESCRIPTIVE_TAGS[key]: value
        for key, value in stream.metadata.items()
        if key in DESCRIPTIVE_TAGS and value and not (key == "language" and value == "und")
    }


def _transport_stream_cut(path) -> int:
    """The packet size of an MPEG transport stream whose length is not a whole number of
    packets (it was cut), else 0 (complete, or not a transport stream)."""
    try:
        with open(path, "rb") as file:
            head = file.read(2 * max(_TS_PACKETS) + 4)
            size = os.fstat(file.fileno()).st_size
    except OSError:
        return 0
    for packet, offset in _TS_PACKETS.items():
        if len(head) > offset + packet and head[offset] == head[offset + packet] == _TS_SYNC:
            return packet if size % packet else 0
    return 0


def ffmpeg_problem(error: Exception) -> str:
    """FFmpeg's own words for `error`, without the errno and file name PyAV adds."""
    return getattr(error, "strerror", None) or first_line(error)
