"""Encoding restored frames into an mp4 beside the copied audio of the source clip.

Frames keep their source timestamps and time base, so the frame count, rate (also a
variable one) and audio sync are the source's. Video is H.264 (libx264) at `crf`
(18: visually lossless; 4:2:0 chroma, or 4:4:4 for odd frame sizes, which 4:2:0 cannot
hold); `crf=0` stores the RGB frames exactly (libx264rgb, lossless, larger files that
fewer players open). Audio packets are copied untouched: no re-encoding, no drift.
What the source's streams say about themselves is kept: the display matrix (frames are
turned back to their stored orientation, see `orientation`), the colour tags (RGB is
converted to YUV with the source's own matrix and range, so the colours stay), and the
language and title of every stream.
"""

from __future__ import annotations

import contextlib

import av
import numpy as np

from gfrnet_tf.errors import BadVideoError
from gfrnet_tf.video.reader import Colour, VideoInfo, descriptive_tags, ffmpeg_problem

DEFAULT_CRF = 18
PRESET = "medium"
_RGB = 0  # FFmpeg's colour space of RGB (GBR) video: no YUV matrix


class VideoWriter:
    """Writes `path` (an mp4) for a clip described by `info`; use as a context manager.

    Audio streams whose codec mp4 cannot hold are left out and listed in `dropped_audio`.
    """

    def __init__(self, path, info: VideoInfo, crf: int = DEFAULT_CRF, source=None):
        self.source = source or path
        self._file = open(path, "wb")
        try:
            self._container = av.open(self._file, "w", format="mp4")
        except av.FFmpegError as error:
            self._file.close()
            raise BadVideoError(
                self.source, f"cannot write mp4 ({ffmpeg_problem(error)})"
            ) from error
        lossless = crf == 0
        video = self._container.add_stream("libx264rgb" if lossless else "libx264", rate=info.rate)
        video.width, video.height = info.width, info.height
        even = info.width % 2 == 0 and info.height % 2 == 0
        video.pix_fmt = "rgb24" if lossless else ("yuv420p" if even else "yuv444p")
        # The encoder's clock too: left at 1 / rate, a variable rate's timestamps would be
        # rounded onto it and collide.
        video.time_base = video.codec_context.time_base = info.time_base
        video.options = {"qp": "0"} if lossless else {"crf": str(crf), "preset": PRESET}
        if info.orientation.matrix is not None:
            video.set_display_matrix(list(info.orientation.matrix))
        self._yuv = tag_colour(video.codec_context, info.colour, lossless)
        video.metadata.update(info.tags)
        self._video, self._time_base, self._orientation = video, info.time_base, info.orientation
        self._audio, self.dropped_audio = {}, []
        for stream in info.audio:
            if stream.codec_context.name in self._container.supported_codecs:
                copy = self._container.add_stream_from_template(stream)
                copy.metadata.update(descriptive_tags(stream))
                self._audio[stream.index] = copy
            else:
                self.dropped_audio.append(f"#{stream.index} ({stream.codec_context.name})")

    def write(self, image: np.ndarray, pts: int) -> None:
        """Encodes one upright uint8 RGB frame (as the reader yields it) shown at `pts`
        (source time base)."""
        image = np.ascontiguousarray(self._orientation.stored(image))
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        if self._yuv is not None:
            frame = frame.reformat(format=self._video.pix_fmt, **self._yuv)
        frame.pts, frame.time_base = pts, self._time_base
        self._mux(self._video.encode(frame))

    def copy_audio(self, packet: av.Packet) -> None:
        """Muxes a source audio packet unchanged (FFmpeg interleaves it with the video)."""
        stream = self._audio.get(packet.stream.index)
        if stream is not None:
            packet.stream = stream
            self._mux([packet])

    def _mux(self, packets) -> None:
        try:
            self._container.mux(packets)
        except av.FFmpegError as error:
            raise BadVideoError(
                self.source, f"cannot write the video ({ffmpeg_problem(error)})"
            ) from error

    def close(self) -> None:
        """Flushes the encoder and finishes the file."""
        try:
            self._mux(self._video.encode(None))
            self._container.close()
        finally:
            self._file.close()

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
            return
        # Failing already: the half-written file is discarded, its own errors do not matter.
        with contextlib.suppress(av.FFmpegError, OSError):
            self._container.close()
        self._file.close()


def tag_colour(codec, colour: Colour, rgb: bool) -> dict | None:
    """Tags the encoder with `colour`; for YUV, the `reformat` arguments that convert RGB
    with the same matrix and range (PyAV's default, BT.601 limited, where the source does
    not say, as the reader's conversion used). An RGB stream has no matrix or range."""
    codec.color_primaries, codec.color_trc = colour.primaries, colour.transfer
    if rgb:
        return None
    space = colour.space if colour.space not in (_RGB, Colour.space) else None
    colour_range = colour.range if colour.range != Colour.range else None
    codec.colorspace = space or Colour.space
    codec.color_range = colour_range or Colour.range
    return {"dst_colorspace": space, "dst_color_range": colour_range}
