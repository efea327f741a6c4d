"""The one loader for photos on disk, and an atomic writer.

Every command reads user photos through `load_image`, so scraped collections and uploads
fail in one way: a `BadImageError` naming the file and the problem, never a traceback.

Pillow, not OpenCV, does the decoding: `Image.open` parses only the header, so the pixel
count is checked before a decompression bomb is allocated (`cv2.imread` decodes first and
only knows a process-wide `CV_IO_MAX_IMAGE_PIXELS`), and Pillow exposes the source mode
(16-bit, CMYK, palette, alpha) so each is converted deliberately instead of silently.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from gfrnet_tf.errors import BadImageError
from gfrnet_tf.io.atomic import atomic_writer

# 50 MP accepts a 48 MP phone photo and refuses e.g. 9000x9000 (81 MP). Pillow's own
# bomb guard (2 * Image.MAX_IMAGE_PIXELS, ~179 MP) stays a hard ceiling above this.
DEFAULT_MAX_PIXELS = 50_000_000
# MTCNN cannot find a face smaller than its 20 px `min_face_size`; 24 px leaves room for
# the crop margin. Smaller images are rejected with this minimum in the message.
DEFAULT_MIN_SIZE = 24
# Transparent pixels are composited on white: that is how viewers and browsers show a
# cut-out face, whereas dropping alpha exposes whatever colour the editor left there.
ALPHA_BACKGROUND = (255, 255, 255)
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def load_image(
    path, max_pixels: int = DEFAULT_MAX_PIXELS, min_size: int = DEFAULT_MIN_SIZE
) -> np.ndarray:
    """Reads a photo as uint8 RGB `[H, W, 3]`, upright per its EXIF orientation.

    Raises `BadImageError(path, problem)` for a missing, empty, corrupt, truncated or
    non-image file, more than `max_pixels` pixels, or a side shorter than `min_size`.
    """
    path = Path(path)
    if not path.is_file():
        raise BadImageError(path, "no such file")
    if path.stat().st_size == 0:
        raise BadImageError(path, "empty file")
    with open(path, "rb") as stream:
        return _decode(stream, path, max_pixels, min_size)


def decode_image(
    data: bytes, source, max_pixels: int = DEFAULT_MAX_PIXELS, min_size: int = DEFAULT_MIN_SIZE
) -> np.ndarray:
    """`load_image` for bytes already read (e.g. by Beam from a remote file system)."""
    if not data:
        raise BadImageError(source, "empty file")
    return _decode(io.BytesIO(data), source, max_pixels, min_size)


def save_image(path, rgb) -> None:
    """Writes uint8 RGB `[H, W, 3]`; format from the suffix; atomic (temp name + rename)."""
    path = Path(path)
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ValueError(f"save_image needs uint8 [H, W, 3], got {rgb.dtype} {rgb.shape}")
    image_format = Image.registered_extensions().get(path.suffix.lower())
    if image_format is None:
        raise BadImageError(path, f"unknown image format {path.suffix!r} (use .png or .jpg)")
    with atomic_writer(path) as stream:
        Image.fromarray(rgb).save(
            stream, format=image_format, **({"quality": 95} if image_format == "JPEG" else {})
        )


def image_header(
    path, source=None, max_pixels: int = DEFAULT_MAX_PIXELS, min_size: int = DEFAULT_MIN_SIZE
) -> tuple[str, int, int]:
    """`(Pillow format, width, height)` of an image file, read from its header alone.

    An upload is checked with this before anything decodes it; the same `BadImageError`s
    as `load_image` (not an image, too many pixels, too small), naming `source` (default:
    the path).
    """
    source = path if source is None else source
    with open(path, "rb") as stream:
        image = _open_header(stream, source, max_pixels, min_size)
        return image.format, *image.size


def _open_header(stream, source, max_pixels: int, min_size: int) -> Image.Image:
    """The lazily opened image (header parsed, no pixels), its size checked."""
    try:
        with warnings.catch_warnings():
            # Our own `max_pixels` check below is the one that speaks to the user.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(stream)  # lazy: reads the header only
    except Image.DecompressionBombError:
        raise BadImageError(source, f"more than {max_pixels} pixels (decompression bomb?)")
    except UnidentifiedImageError:
        raise BadImageError(source, "not an image file (unrecognised format)")
    except OSError as error:
        raise BadImageError(source, f"unreadable image header ({error})")
    width, height = image.size
    if width * height > max_pixels:
        raise BadImageError(
            source,
            f"{width}x{height} is {width * height} pixels, more than the maximum {max_pixels}",
        )
    if min(width, height) < min_size:
        raise BadImageError(
            source, f"{width}x{height} is too small: both sides must be at least {min_size} px"
        )
    return image


def _decode(stream, source, max_pixels: int, min_size: int) -> np.ndarray:
    image = _open_header(stream, source, max_pixels, min_size)
    try:
        image.load()  # a truncated or corrupt body fails here, before any conversion
        image = ImageOps.exif_transpose(image)
        return _to_rgb(image, source)
    except BadImageError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise BadImageError(source, f"corrupt or truncated image data ({error})")


def _to_rgb(image: Image.Image, source) -> np.ndarray:
    """Converts every mode Pillow decodes to uint8 RGB, or rejects it by name."""
    if image.mode in _SIXTEEN_BIT_MODES:
        # Pillow's own I;16 -> L conversion clips at 255 instead of rescaling.
        values = np.asarray(image, dtype=np.float64)
        if values.min() < 0 or values.max() > 65535:
            raise BadImageError(source, f"mode {image.mode} values outside 16-bit range")
        gray = np.round(values / 257.0).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=-1)
    if image.mode == "F":
        raise BadImageError(source, "floating-point images (mode F) are not supported")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        image.mode == "P" and "transparency" in image.info
    ):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, ALPHA_BACKGROUND + (255,))
        image = Image.alpha_composite(background, rgba)
    try:
        rgb = image.convert("RGB")
    except ValueError:
        raise BadImageError(source, f"colour mode {image.mode} cannot be converted to RGB")
    return np.asarray(rgb, dtype=np.uint8).copy()
