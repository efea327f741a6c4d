"""The size of an encoded PNG/JPEG read from its header, in graph, before any decoding.

Decoding allocates `H * W * 3` bytes whatever the file size: a one-colour 12000x12000 PNG
is a few hundred KB but decodes to 432 MB (uint8), four times that as float. Every in-graph
decoder of untrusted bytes (the record parser, the `serve_encoded` signature) first takes
the size from here and refuses an image before it is allocated. PNG: the IHDR chunk, which
the format requires to come first. JPEG: `tf.image.extract_jpeg_shape`, which parses the
markers up to the frame header (SOF) and allocates no pixels.
"""

from __future__ import annotations

import tensorflow as tf

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
# 8 magic bytes, then the IHDR chunk's length (4) and type (4), width (4) and height (4).
_PNG_HEADER_BYTES = 24


def checked_header_size(encoded, check, max_pixels=None):
    """`[height, width]` (int32) of one encoded image (a scalar string), from its header.

    `check(condition, problem)` builds the caller's assertion op, whose message names the
    input; `problem` is a string or a string tensor. It is asked for "is not a JPEG or PNG
    image" and, with `max_pixels`, for more pixels than that (or a side of 0). The result
    depends on those assertions: a decode that depends on it never runs on a refused image.
    """
    # Padded with zeros: `substr` past the end of a short input is an op error (whose
    # message quotes the raw bytes), and both sides of a `logical_and` are evaluated.
    head = tf.strings.join(
        [tf.strings.substr(encoded, 0, _PNG_HEADER_BYTES), bytes(_PNG_HEADER_BYTES)]
    )
    is_png = tf.logical_and(
        tf.strings.length(encoded) >= _PNG_HEADER_BYTES,
        tf.logical_and(
            tf.equal(tf.strings.substr(head, 0, len(PNG_MAGIC)), PNG_MAGIC),
            tf.equal(tf.strings.substr(head, 12, 4), b"IHDR"),
        ),
    )
    is_jpeg = tf.equal(tf.strings.substr(head, 0, len(JPEG_MAGIC)), JPEG_MAGIC)
    format_check = check(tf.logical_or(is_png, is_jpeg), "is not a JPEG or PNG image")

    def png_size():
        width_height = tf.io.decode_raw(
            tf.strings.substr(head, 16, 8), tf.int32, little_endian=False
        )
        return tf.reverse(width_height, [0])

    with tf.control_dependencies([format_check]):
        size = tf.cond(is_png, png_size, lambda: tf.image.extract_jpeg_shape(encoded)[:2])
    if max_pixels is None:
        return size
    # int64: a PNG side is up to 2^31 - 1 (read as negative if a header sets bit 31).
    size64 = tf.cast(size, tf.int64)
    height, width = size64[0], size64[1]
    positive = tf.logical_and(height > 0, width > 0)
    too_many = tf.strings.join(
        [
            tf.strings.as_string(width),
            "x",
            tf.strings.as_string(height),
            f" is more than the {max_pixels} pixels allowed (decompression bomb?)",
        ]
    )
    problem = tf.where(positive, too_many, "states a width or height outside 1 .. 2^31 - 1")
    with tf.control_dependencies(
        [check(tf.logical_and(positive, height * width <= max_pixels), problem)]
    ):
        return tf.identity(size)
