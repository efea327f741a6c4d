"""Encoded JPEG/PNG -> the pixels `gfrnet_tf.io.load_image` gives, inside a TF graph.

The `serve_encoded` signature must restore the same image as `gfrnet-restore` does for the
same file, so this decoder follows Pillow's conversions exactly (tested against
`load_image`, to the grey level):
- JPEG: libjpeg's accurate integer DCT (TF's default fast DCT differs by up to 7 levels);
- EXIF orientation applied as `ImageOps.exif_transpose` does, read from the first APP1
  `Exif` segment of a JPEG or the first eXIf chunk of a PNG (IFD0, tag 0x0112);
- PNG transparency (alpha, or a palette's tRNS) composited on white; a grey or RGB PNG's
  single transparent colour is ignored, as Pillow's RGB conversion does; 16-bit grey
  rounded (`v / 257`), 16-bit colour cut to its high byte, as Pillow does.
The marker segments (JPEG) or chunks (PNG) are walked in the graph; a file that ends
before its end marker fails with a readable assertion; an EXIF block that is not TIFF
data is ignored, as Pillow ignores it. Known differences, left because they are rare:
- an orientation given only in XMP metadata, or in ImageMagick's PNG text "Raw profile
  type exif", is applied by `load_image` and ignored here;
- a PNG cut after its pixel data (IEND or a CRC missing) is refused here and read by
  Pillow; a JPEG cut and then closed with an end marker is read by both (libjpeg only
  warns), its missing rows grey.
"""

from __future__ import annotations

import tensorflow as tf

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Bytes of zero padding behind the data, so that every fixed-width read near the end of a
# short or truncated file stays inside the tensor.
_PAD = 16
_EXIF_ORIENTATION_TAG = 0x0112
_JPEG_SOS = 0xDA
_JPEG_APP1 = 0xE1
# Pillow composites transparent pixels on white (io.images.ALPHA_BACKGROUND).
_WHITE = 255
# PNG colour types: grey + alpha and RGBA carry alpha; a palette may have a tRNS chunk.
_PNG_ALPHA_TYPES = (4, 6)
_PNG_GREY = 0
_PNG_PALETTE = 3


def decode_upright_rgb(data, name, index):
    """One encoded JPEG or PNG (scalar string) -> uint8 `[H, W, 3]` as `load_image` reads it.

    `name` and `index` label the assertion for a truncated or corrupt file. The format
    must have been checked already (see the signature's header check).
    """
    data = tf.convert_to_tensor(data, tf.string)
    raw = tf.concat([tf.io.decode_raw(data, tf.uint8), tf.zeros([_PAD], tf.uint8)], 0)
    raw = tf.cast(raw, tf.int32)
    length = tf.strings.length(data)
    label = [f"{name}: element", index]

    def png():
        exif, transparent, complete = _png_chunks(raw, length)
        check = tf.debugging.Assert(
            complete, [*label, "is truncated or corrupt PNG data (its chunks do not end with IEND)"]
        )
        with tf.control_dependencies([check]):
            return _decode_png(data, raw, transparent), exif

    def jpeg():
        exif, complete = _jpeg_segments(raw, length)
        check = tf.debugging.Assert(
            complete,
            [*label, "is truncated or corrupt JPEG data (no end-of-image marker after the scan)"],
        )
        with tf.control_dependencies([check]):
            return tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE"), exif

    is_png = tf.equal(tf.strings.substr(data, 0, len(_PNG_MAGIC)), _PNG_MAGIC)
    image, exif = tf.cond(is_png, png, jpeg)
    return _orient(image, _exif_orientation(raw, length, exif))


def _decode_png(data, raw, transparent):
    """Composited on white where Pillow composites; 16 bits reduced as Pillow reduces them.

    `transparent`: the PNG has a tRNS chunk (needed for palette images: TF's alpha for a
    palette of fewer than 8 bits without tRNS is not opaque, measured).
    """
    depth, colour_type = raw[24], raw[25]
    wide = tf.cast(tf.io.decode_png(data, channels=4, dtype=tf.uint16), tf.int32)
    grey16 = tf.logical_and(tf.equal(depth, 16), tf.equal(colour_type, _PNG_GREY))
    # decode_png scales 8-bit data by 257, so both reductions return 8-bit values exactly.
    values = tf.where(grey16, (wide + 128) // 257, wide // 256)
    rgb, alpha = values[..., :3], values[..., 3:]
    has_alpha = tf.logical_or(
        tf.reduce_any(tf.equal(colour_type, _PNG_ALPHA_TYPES)),
        tf.logical_and(tf.equal(colour_type, _PNG_PALETTE), transparent),
    )
    alpha = tf.where(has_alpha, alpha, 255)
    # Pillow's alpha_composite on an opaque background is round((c * a + W * (255 - a)) / 255);
    # 255 is odd, so there are no ties to break.
    composited = (rgb * alpha + _WHITE * (255 - alpha) + 127) // 255
    return tf.cast(composited, tf.uint8)


def _orient(image, orientation):
    """`ImageOps.exif_transpose` for EXIF orientations 2-8 (anything else: unchanged).

    Each orientation is a transpose (5-8) followed by flips: 2 left-right, 3 both,
    4 top-bottom, 5 none (TRANSPOSE), 6 left-right (90 degrees clockwise), 7 both
    (TRANSVERSE), 8 top-bottom (90 degrees anticlockwise). Dynamic `perm` and `axis`
    inputs do it without a branch per orientation.
    """

    def among(*values):
        return tf.reduce_any(tf.equal(orientation, values))

    image = tf.transpose(image, tf.where(among(5, 6, 7, 8), [1, 0, 2], [0, 1, 2]))
    axes = tf.boolean_mask([0, 1], tf.stack([among(3, 4, 7, 8), among(2, 3, 6, 7)]))
    return tf.reverse(image, axes)


def _png_chunks(raw, length):
    """Walks the PNG chunks from the signature to IEND.

    Returns `(offset of the first eXIf payload or -1, whether a tRNS chunk exists, whether
    the chunks end with a complete IEND)`; a truncated PNG stops before its IEND.
    """

    def kind(name):
        return tf.constant([ord(c) for c in name])

    def walking(position, exif, transparent, end):
        return tf.logical_and(tf.logical_not(end), position + 12 <= length)

    def step(position, exif, transparent, end):
        digits = [tf.cast(raw[position + k], tf.int64) for k in range(4)]
        size = ((digits[0] * 256 + digits[1]) * 256 + digits[2]) * 256 + digits[3]
        size = tf.cast(tf.minimum(size, tf.cast(length, tf.int64)), tf.int32)
        name = raw[position + 4 : position + 8]
        exif = tf.where(
            (exif < 0) & tf.reduce_all(tf.equal(name, kind("eXIf"))), position + 8, exif
        )
        transparent = transparent | tf.reduce_all(tf.equal(name, kind("tRNS")))
        end = tf.reduce_all(tf.equal(name, kind("IEND")))
        return position + 12 + size, exif, transparent, end

    position, exif, transparent, end = tf.while_loop(
        walking, step, (tf.constant(8), tf.constant(-1), tf.constant(False), tf.constant(False))
    )
    return exif, transparent, tf.logical_and(end, position <= length)


def _jpeg_segments(raw, length):
    """Walks the JPEG marker segments from SOI to the first scan (SOS).

    Returns `(offset of the first Exif APP1's TIFF header or -1, whether the file is
    complete: a scan exists and an end-of-image marker FFD9 follows it)`. Entropy-coded
    data never holds FFD9 (0xFF is stuffed as FF00), so a FFD9 after the scan is the
    image's end; a file cut anywhere before it has none.
    """
    exif_signature = tf.constant([ord(c) for c in "Exif"] + [0, 0])

    def walking(position, exif, scan):
        return tf.logical_and(scan < 0, position + 4 <= length)

    def step(position, exif, scan):
        lead, marker = raw[position], raw[position + 1]
        size = raw[position + 2] * 256 + raw[position + 3]
        is_exif = tf.logical_and(
            tf.equal(marker, _JPEG_APP1),
            tf.reduce_all(tf.equal(raw[position + 4 : position + 10], exif_signature)),
        )
        exif = tf.where(tf.logical_and(exif < 0, is_exif), position + 10, exif)
        scan = tf.where(tf.equal(marker, _JPEG_SOS), position, scan)
        # A byte other than FF where a marker must be: the file is corrupt; stop there.
        scan = tf.where(tf.not_equal(lead, 0xFF), length, scan)
        fill = tf.equal(marker, 0xFF)  # padding FFs before a marker
        standalone = tf.logical_or(
            tf.logical_and(marker >= 0xD0, marker <= 0xD7), tf.equal(marker, 0x01)
        )
        advance = tf.where(fill, 1, tf.where(standalone, 2, 2 + tf.maximum(size, 2)))
        return position + advance, exif, scan

    _, exif, scan = tf.while_loop(walking, step, (tf.constant(2), tf.constant(-1), tf.constant(-1)))
    pairs = tf.range(tf.maximum(scan, 0), tf.maximum(length - 1, 0))
    has_end = tf.reduce_any(
        tf.logical_and(
            tf.equal(tf.gather(raw, pairs), 0xFF), tf.equal(tf.gather(raw, pairs + 1), 0xD9)
        )
    )
    return exif, (scan >= 0) & (scan < length) & has_end


def _is_tiff(raw, tiff):
    """Whether a TIFF byte-order header (`II*\\0` or `MM\\0*`) starts at `tiff`."""
    head = tf.gather(raw, tf.maximum(tiff, 0) + tf.range(4))
    return tf.logical_or(
        tf.reduce_all(tf.equal(head, [0x49, 0x49, 0x2A, 0])),
        tf.reduce_all(tf.equal(head, [0x4D, 0x4D, 0, 0x2A])),
    )


def _exif_orientation(raw, length, tiff):
    """The EXIF orientation (1 if absent or unreadable) of the TIFF block at `tiff` (-1: none).

    Read as Pillow reads it: IFD0, the last entry with tag 0x0112 holding one SHORT or
    LONG. Entries beyond the data are not read.
    """
    little = tf.equal(raw[tf.maximum(tiff, 0)], ord("I"))

    def number(positions, width):
        """Unsigned `width`-byte integers at `positions`, in the block's byte order."""
        positions = tf.clip_by_value(positions, 0, length + _PAD - width)
        digits = [tf.cast(tf.gather(raw, positions + k), tf.int64) for k in range(width)]
        big_endian, little_endian = tf.zeros_like(digits[0]), tf.zeros_like(digits[0])
        for big, small in zip(digits, reversed(digits)):
            big_endian, little_endian = big_endian * 256 + big, little_endian * 256 + small
        value = tf.where(little, little_endian, big_endian)
        return tf.cast(tf.minimum(value, 2**31 - 1), tf.int32)

    ifd = tf.maximum(tiff, 0) + number(tf.maximum(tiff, 0) + 4, 4)
    ifd = tf.minimum(ifd, length)  # an offset past the end reads no entries
    count = tf.clip_by_value(number(ifd, 2), 0, tf.maximum((length - ifd - 2) // 12, 0))
    entries = ifd + 2 + 12 * tf.range(count)
    tags, kinds, counts = number(entries, 2), number(entries + 2, 2), number(entries + 4, 4)
    values = tf.where(tf.equal(kinds, 3), number(entries + 8, 2), number(entries + 8, 4))
    match = (
        tf.equal(tags, _EXIF_ORIENTATION_TAG)
        & tf.equal(counts, 1)
        & (tf.equal(kinds, 3) | tf.equal(kinds, 4))
    )
    last = tf.reduce_max(tf.where(match, tf.range(count), -1))
    orientation = tf.gather(tf.concat([values, [1]], 0), tf.where(last >= 0, last, count))
    # Pillow ignores an EXIF block that is not TIFF data; so does this.
    return tf.where(tf.logical_and(tiff >= 0, _is_tiff(raw, tiff)), orientation, 1)
