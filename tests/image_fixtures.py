"""A corpus of awkward image files for every command that reads photos (issue 8).

`write_corpus(folder)` writes them and returns `{file name: outcome}`: either
`("converted", expected uint8 RGB array, mean abs tolerance)` or
`("rejected", words the problem must contain)`. Any command test can run each file and
assert the outcome: restored, or rejected by name with no output.
"""

import io
import struct
import zlib

import numpy as np
from PIL import Image

from gfrnet_tf.io.images import DEFAULT_MIN_SIZE

WHITE = 255


def blocks(height=48, width=64):
    """Four flat colour quadrants: orientation and colour survive JPEG at a loose tolerance."""
    image = np.zeros((height, width, 3), np.uint8)
    image[: height // 2, : width // 2] = (220, 30, 30)
    image[: height // 2, width // 2 :] = (30, 220, 30)
    image[height // 2 :, : width // 2] = (30, 30, 220)
    image[height // 2 :, width // 2 :] = (240, 240, 40)
    return image


def png_header(width, height):
    """A valid PNG signature and IHDR claiming `width x height`, with a tiny body."""

    def chunk(kind, payload):
        body = kind + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def _saved(image, **kwargs):
    buffer = io.BytesIO()
    image.save(buffer, **kwargs)
    return buffer.getvalue()


def write_corpus(folder):
    """Writes every category into `folder`; returns `{name: outcome}` as described above."""
    image = blocks()
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    gray = np.random.default_rng(0).integers(0, 256, (32, 40), dtype=np.uint8)
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[..., :3] = (200, 10, 10)
    rgba[:, :10, 3] = 0
    rgba[:, 10:, 3] = 255
    composited = rgba[..., :3].copy()
    composited[:, :10] = WHITE
    eight = (np.arange(32 * 32).reshape(32, 32) % 256).astype(np.uint8)
    big_jpeg = _saved(Image.fromarray(blocks(256, 256)), format="JPEG", quality=90)
    files = {
        "rotated_exif.jpg": (
            _saved(Image.fromarray(image), format="JPEG", quality=95, exif=exif),
            ("converted", np.rot90(image, k=-1), 4),
        ),
        "gray.png": (
            _saved(Image.fromarray(gray), format="PNG"),
            ("converted", np.repeat(gray[..., None], 3, -1), 0),
        ),
        "cutout_rgba.png": (
            _saved(Image.fromarray(rgba, "RGBA"), format="PNG"),
            ("converted", composited, 0),
        ),
        "deep_16bit.png": (
            _saved(Image.fromarray(eight.astype(np.uint16) * 257), format="PNG"),
            ("converted", np.repeat(eight[..., None], 3, -1), 0),
        ),
        "print_cmyk.jpg": (
            _saved(Image.fromarray(image).convert("CMYK"), format="JPEG", quality=95),
            ("converted", image, 6),
        ),
        "palette.gif": (
            _saved(
                Image.fromarray(image).convert("P", palette=Image.Palette.ADAPTIVE), format="GIF"
            ),
            ("converted", image, 0),
        ),
        "png_named.jpg": (_saved(Image.fromarray(image), format="PNG"), ("converted", image, 0)),
        "empty.jpg": (b"", ("rejected", "empty file")),
        "truncated.jpg": (big_jpeg[: len(big_jpeg) // 2], ("rejected", "truncated")),
        "random_bytes.jpg": (
            np.random.default_rng(1).integers(0, 256, 4096, np.uint8).tobytes(),
            ("rejected", "not an image"),
        ),
        "notes.png": (b"this is a shopping list, not a photo\n" * 20, ("rejected", "not an image")),
        "bomb_30000x30000.png": (png_header(30000, 30000), ("rejected", "pixels")),
        "thumbnail.png": (
            _saved(Image.fromarray(blocks(DEFAULT_MIN_SIZE - 1, 64)), format="PNG"),
            ("rejected", f"at least {DEFAULT_MIN_SIZE} px"),
        ),
    }
    for name, (data, _) in files.items():
        (folder / name).write_bytes(data)
    return {name: outcome for name, (_, outcome) in files.items()}
