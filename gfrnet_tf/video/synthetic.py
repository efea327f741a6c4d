"""Clips made from the bundled face, for tests, benchmarks and docs: a moving, scaling copy.

Frame `t` shows the sample photo placed by a known similarity `photo_to_frame(t)` (the
face drifts along a smooth path and breathes in scale), so the true motion of every face
pixel is known and the clean clip is known; `degraded_frame` adds blur, a 2x
down/up-scale, noise and JPEG, seeded per frame. `write_clip` encodes frames with PyAV,
with a sine-wave AAC stream unless told not to. The face's size follows the frame's:
about 55 px across at the default 160x128.
"""

from __future__ import annotations

import math
from fractions import Fraction

import av
import cv2
import numpy as np

from gfrnet_tf.sample import load_sample
from gfrnet_tf.video.reader import Colour, Frame
from gfrnet_tf.video.writer import tag_colour

WIDTH, HEIGHT = 160, 128
RATE = 25
# The sample's face (its 68 landmarks span about x, y in 60..200 of 256).
FACE_REGION = (64, 64, 192, 192)


def photo_to_frame(t: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """2x3 matrix from sample-photo pixels to frame pixels at frame `t`."""
    scale = 0.43 * (1 + 0.1 * math.sin(2 * math.pi * t / 45)) * min(width / WIDTH, height / HEIGHT)
    centre_x = width / 2 + 0.12 * width * math.sin(2 * math.pi * t / 60)
    centre_y = height / 2 + 0.08 * height * math.sin(2 * math.pi * t / 37 + 1.0)
    return np.array([[scale, 0, centre_x - 128 * scale], [0, scale, centre_y - 128 * scale]])


def clean_frame(t: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    matrix = photo_to_frame(t, width, height)
    photo = _smoothed_sample(round(0.5 / matrix[0, 0], 1))
    return cv2.warpAffine(
        photo, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def degraded_frame(t: int, width: int = WIDTH, height: int = HEIGHT, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng([seed, t])
    image = cv2.GaussianBlur(clean_frame(t, width, height), (0, 0), 1.0)
    small = cv2.resize(image, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
    image = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    image = np.clip(image + rng.normal(0, 4, image.shape), 0, 255).astype(np.uint8)
    _, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 50])
    return cv2.imdecode(jpeg, cv2.IMREAD_UNCHANGED)


def frames(count: int, width: int = WIDTH, height: int = HEIGHT, seed: int = 0):
    """`Frame`s of the degraded clip at `RATE` (time base 1 / RATE)."""
    for t in range(count):
        yield Frame(t, degraded_frame(t, width, height, seed), t)


def write_clip(
    path,
    images,
    width: int = WIDTH,
    height: int = HEIGHT,
    rate: int = RATE,
    audio: bool = True,
    pts=None,
    time_base=None,
    display_rotation: int = 0,
    tags: dict | None = None,
    colour: Colour | None = None,
) -> None:
    """Encodes uint8 RGB `images` (an iterable) as H.264 into `path`, with a 440 Hz tone.

    `pts`: per-frame timestamps in `time_base` units (a variable rate); default one per frame.
    `display_rotation` (a multiple of 90, counter-clockwise): the frames are stored turned
    the other way and the stream tagged to be shown turned by it, so the shown clip is
    `images`, as a phone stores portrait video. `tags`: `{"video" | "audio": {tag: value}}`
    stream metadata; `colour`: the video's colour tags (its conversion follows them).
    """
    turns = display_rotation // 90
    if turns % 2:
        width, height = height, width
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=rate)
        video.width, video.height = width, height
        video.pix_fmt = "yuv420p" if width % 2 == height % 2 == 0 else "yuv444p"
        time_base = video.time_base = time_base or Fraction(
            1, rate
        )  # the muxer changes the stream's
        if turns:
            video.set_display_rotation(display_rotation)
        conversion = tag_colour(video.codec_context, colour or Colour(), rgb=False)
        tone = container.add_stream("aac", rate=TONE_RATE) if audio else None
        if tone is not None:
            tone.layout = "mono"
        for stream, kind in ((video, "video"), (tone, "audio")):
            if stream is not None:
                stream.metadata.update((tags or {}).get(kind, {}))
        written = 0  # tone samples
        for index, image in enumerate(images):
            image = np.ascontiguousarray(np.rot90(image, -turns))
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(
                format=video.pix_fmt, **conversion
            )
            frame.pts = index if pts is None else pts[index]
            frame.time_base = time_base
            container.mux(video.encode(frame))
            while tone is not None and written < (index + 1) * TONE_RATE / rate:
                container.mux(tone.encode(_tone(written, written + AAC_FRAME)))  # interleaved
                written += AAC_FRAME
        container.mux(video.encode(None))
        if tone is not None:
            container.mux(tone.encode(None))


TONE_RATE = 16000
AAC_FRAME = 1024


def _tone(start: int, stop: int) -> av.AudioFrame:
    samples = np.arange(start, stop)
    wave = (0.2 * np.sin(2 * math.pi * 440 * samples / TONE_RATE)).astype(np.float32)
    frame = av.AudioFrame.from_ndarray(wave[None], format="fltp", layout="mono")
    frame.sample_rate, frame.pts = TONE_RATE, start
    return frame


_SMOOTHED = {}


def _smoothed_sample(sigma: float) -> np.ndarray:
    """The sample blurred against aliasing before it is shrunk into the frame."""
    if sigma not in _SMOOTHED:
        _SMOOTHED[sigma] = cv2.GaussianBlur(load_sample()[0], (0, 0), sigma)
    return _SMOOTHED[sigma]


def face_box(t: int, width: int = WIDTH, height: int = HEIGHT) -> tuple[float, float, float, float]:
    """`FACE_REGION` of the sample as placed in frame `t`, as a box (x, y, w, h)."""
    x0, y0, x1, y1 = FACE_REGION
    (fx0, fy0), (fx1, fy1) = (
        np.array([[x0, y0, 1], [x1, y1, 1]]) @ photo_to_frame(t, width, height).T
    )
    return fx0, fy0, fx1 - fx0, fy1 - fy0
