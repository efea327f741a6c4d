"""The TFRecord schema of one training pair: writer, in-graph parser, start-up validator.

One `tf.train.Example` per pair (ground truth `I`, guide `I_g`):

| key | type | meaning |
| --- | --- | --- |
| `schema_version` | int64 | `SCHEMA_VERSION`; a record without it reads as version 0 |
| `target`, `guide` | bytes | encoded PNG or JPEG, RGB |
| `landmarks`, `guide_landmarks` | 136 floats | 68 `(x, y)` pixel points of the stored image |
| `identity` | bytes | person id (UTF-8), may be empty |
| `target_file`, `guide_file` | bytes | source file names, for error messages and audits |

Errors name the shard and the record index. Inside `tf.data` a Python exception cannot be
raised, so `parse_pair` carries `(shard, index)` and its `tf.debugging.Assert`s put
`"<shard>: record <i>: <problem>"` into the op error; `validate_shard` runs the same parser
over a shard at start-up and raises `BadRecordError` for any failure, including images that
do not decode (the train command calls it so a bad shard fails before the first step).

Two checks guard memory before TF touches a shard or an image. TF's record reader trusts
any length whose CRC is valid (a crafted 2^35-byte length kills the process), so
`check_record_headers` walks every record header in Python first (12 bytes per record,
payloads skipped). And `parse_pair` reads each image's size from its PNG/JPEG header
(`gfrnet_tf.data.encoded`) and refuses more than `MAX_RECORD_PIXELS` before decoding.
"""

from __future__ import annotations

import contextlib
import os
import struct

import numpy as np
import tensorflow as tf

from gfrnet_tf.data.landmarks import IMAGE_POINTS
from gfrnet_tf.ibug68 import NUM_LANDMARKS
from gfrnet_tf.data.encoded import checked_header_size
from gfrnet_tf.errors import BadRecordError, first_line
from gfrnet_tf.io.paths import printable

SCHEMA_VERSION = 1
# Records hold `image_size` px crops (256 in the paper's set-up); 16x that side is far
# beyond any real record and still bounds one decoded image to 48 MB (uint8) / 192 MB
# (float32), whereas a 12000x12000 PNG of a few hundred KB would need ~3 GB.
MAX_RECORD_PIXELS = 4096 * 4096
# How a record's problem shows in TF's error text.
_ASSERT_MARKER = "assertion failed: ["
_NOT_EXAMPLE = "payload is not a tf.train.Example"
_PARSE_FAILURE = "Could not parse example input"  # TF's text, followed by the raw payload
_POINT_VALUES = NUM_LANDMARKS * 2

# Fixed-length features get defaults so a missing key becomes a readable check failure
# below instead of parse_single_example's "Feature: x (data type: ...) is required".
_FEATURES = {
    "schema_version": tf.io.FixedLenFeature([], tf.int64, default_value=0),
    "target": tf.io.FixedLenFeature([], tf.string, default_value=""),
    "guide": tf.io.FixedLenFeature([], tf.string, default_value=""),
    # Variable length so a wrong count is reported as such, not as a shape error.
    "landmarks": tf.io.VarLenFeature(tf.float32),
    "guide_landmarks": tf.io.VarLenFeature(tf.float32),
    "identity": tf.io.FixedLenFeature([], tf.string, default_value=""),
    "target_file": tf.io.FixedLenFeature([], tf.string, default_value=""),
    "guide_file": tf.io.FixedLenFeature([], tf.string, default_value=""),
}


def _bytes(value):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _encode_image(image, image_format, source):
    """uint8 `[H, W, 3]` -> PNG/JPEG bytes; already encoded bytes pass through untouched."""
    if isinstance(image, bytes):
        return image
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise BadRecordError(
            source, f"image must be uint8 [H, W, 3], got {image.dtype} {image.shape}"
        )
    if image_format == "png":
        return tf.io.encode_png(image).numpy()
    if image_format == "jpeg":
        return tf.io.encode_jpeg(image, quality=95).numpy()
    raise BadRecordError(source, f"image_format must be 'png' or 'jpeg', got {image_format!r}")


def _points(landmarks, source):
    points = np.asarray(landmarks, np.float32)
    if points.shape != (NUM_LANDMARKS, 2):
        raise BadRecordError(source, f"landmarks must be [68, 2], got {points.shape}")
    return tf.train.Feature(float_list=tf.train.FloatList(value=points.reshape(-1)))


def encode_pair(
    target,
    guide,
    landmarks,
    guide_landmarks,
    identity="",
    target_file="",
    guide_file="",
    image_format="png",
) -> bytes:
    """One serialised `tf.train.Example` of the schema above.

    Images are uint8 `[H, W, 3]` arrays (encoded as `image_format`) or encoded bytes kept
    as they are, so a JPEG from disk is not re-compressed.
    """
    source = target_file or "<pair>"
    feature = {
        "schema_version": tf.train.Feature(int64_list=tf.train.Int64List(value=[SCHEMA_VERSION])),
        "target": _bytes(_encode_image(target, image_format, source)),
        "guide": _bytes(_encode_image(guide, image_format, guide_file or source)),
        "landmarks": _points(landmarks, source),
        "guide_landmarks": _points(guide_landmarks, guide_file or source),
        "identity": _bytes(str(identity).encode()),
        "target_file": _bytes(str(target_file).encode()),
        "guide_file": _bytes(str(guide_file).encode()),
    }
    # deterministic=True: proto map order otherwise varies between processes, and re-runs
    # of the preparation pipeline must write byte-identical shards.
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    return example.SerializeToString(deterministic=True)


def write_shard(path, examples) -> int:
    """Writes serialised examples to `path` atomically (temp name, then rename); returns count."""
    path = os.fspath(path)
    temporary = f"{path}.tmp-{os.getpid()}"
    count = 0
    try:
        with tf.io.TFRecordWriter(temporary) as writer:
            for example in examples:
                writer.write(example)
                count += 1
        tf.io.gfile.rename(temporary, path, overwrite=True)
    finally:
        if tf.io.gfile.exists(temporary):
            tf.io.gfile.remove(temporary)
    return count


def _crc32c_table():
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)  # reflected Castagnoli polynomial
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _crc32c_table()
_HEADER = struct.Struct("<QI")  # length, masked CRC-32C of the 8 length bytes
_FOOTER_BYTES = 4  # masked CRC-32C of the payload


def masked_crc32c(data: bytes) -> int:
    """The TFRecord checksum: CRC-32C of `data`, rotated right by 15 bits plus a constant."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _open_shard(path):
    """A binary stream of a local file or a `tf.io.gfile` URL, its size in bytes and its
    modification time (ns)."""
    if "://" in path:
        try:
            stream = tf.io.gfile.GFile(path, "rb")
            return stream, stream.size(), tf.io.gfile.stat(path).mtime_nsec
        except tf.errors.NotFoundError:
            raise BadRecordError(printable(path), "no such shard") from None
        except tf.errors.OpError as error:
            raise BadRecordError(printable(path), f"cannot read: {first_line(error)}") from None
    try:
        stream = open(path, "rb")  # pylint: disable=consider-using-with
    except FileNotFoundError:
        raise BadRecordError(printable(path), "no such shard") from None
    except IsADirectoryError:
        raise BadRecordError(printable(path), "is a folder, not a TFRecord shard") from None
    except OSError as error:
        raise BadRecordError(printable(path), f"cannot read: {error.strerror}") from None
    status = os.fstat(stream.fileno())
    return stream, status.st_size, status.st_mtime_ns


# Shards whose headers were found sound, by (path, size, mtime): start-up checks, every
# replica's dataset and every evaluation setting ask again, and a large dataset's scan
# takes tens of seconds. A shard that changes is scanned anew; a bad one is never kept.
_SOUND_SHARDS: dict[tuple, int] = {}


def check_record_headers(path) -> int:
    """Walks every record header of a TFRecord shard, skipping payloads; returns the count.

    Run before any `TFRecordDataset` opens the shard: TF's reader allocates whatever length
    a header with a valid CRC states. Raises `BadRecordError("<shard>: record <i>", problem)`
    for a header cut short, a length CRC that does not match, or a length that does not fit
    in the rest of the file; `BadRecordError(shard, ...)` for a missing, unreadable or empty
    shard. Payload CRCs are left to TF's reader (it checks them without over-allocating).
    """
    path = os.fspath(path)
    stream, size, modified = _open_shard(path)
    key = (path, size, modified)
    offset = count = 0
    with stream:
        if key in _SOUND_SHARDS:
            return _SOUND_SHARDS[key]
        while offset < size:
            where = f"{printable(path)}: record {count}"
            header = stream.read(_HEADER.size)
            if len(header) < _HEADER.size:
                raise BadRecordError(where, f"truncated header at byte {offset} of {size}")
            length, length_crc = _HEADER.unpack(header)
            if masked_crc32c(header[:8]) != length_crc:
                raise BadRecordError(where, f"corrupt header at byte {offset} (length CRC mismatch)")
            rest = size - offset - _HEADER.size
            if length + _FOOTER_BYTES > rest:
                raise BadRecordError(
                    where, f"states a length of {length} bytes at byte {offset}, but only "
                           f"{max(rest - _FOOTER_BYTES, 0)} follow (truncated or crafted shard)")
            offset += _HEADER.size + length + _FOOTER_BYTES
            stream.seek(offset)
            count += 1
    if count == 0:
        raise BadRecordError(printable(path), "no records (empty shard)")
    _SOUND_SHARDS[key] = count
    return count


def _check(condition, shard, index, problem):
    """An assert whose message names the record: `<shard>: record <i>: <problem>`."""
    where = tf.strings.join([shard, ": record ", tf.strings.as_string(index), ": "])
    return tf.debugging.Assert(condition, [tf.strings.join([where, problem])])


def _decode_image(encoded, shard, index, name):
    """Decodes PNG/JPEG to uint8 `[H, W, 3]`, after checking from the header that it is a
    PNG or JPEG of at most `MAX_RECORD_PIXELS` pixels."""
    present = _check(tf.strings.length(encoded) > 0, shard, index, f"no {name} image")
    with tf.control_dependencies([present]):
        size = checked_header_size(
            encoded,
            lambda condition, problem: _check(condition, shard, index,
                                              tf.strings.join([f"{name} image ", problem])),
            MAX_RECORD_PIXELS,
        )
    with tf.control_dependencies([size]):
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    return image


def _decode_points(sparse, shard, index, name):
    values = sparse.values
    count = tf.size(values)
    problem = tf.strings.join(
        [tf.strings.as_string(count), f" {name} values, expected {_POINT_VALUES}"]
    )
    with tf.control_dependencies([_check(tf.equal(count, _POINT_VALUES), shard, index, problem)]):
        return tf.reshape(values, [NUM_LANDMARKS, 2])


def resize_with_landmarks(image, landmarks, size):
    """Resizes a float `[H, W, 3]` image to `size x size` (only if needed) and moves its points.

    `tf.image.resize` uses half-pixel centres, so pixel x maps to `(x + 0.5) * W'/W - 0.5`.
    Antialiased bicubic, clipped back to `[0, 1]` (bicubic overshoots at edges).
    """
    image = tf.convert_to_tensor(image, tf.float32)
    landmarks = tf.convert_to_tensor(landmarks, tf.float32)
    shape = tf.shape(image)
    height, width = shape[0], shape[1]

    def resize():
        resized = tf.image.resize(image, [size, size], "bicubic", antialias=True)
        scale = tf.cast(size, tf.float32) / tf.cast(tf.stack([width, height]), tf.float32)
        return tf.clip_by_value(resized, 0.0, 1.0), (landmarks + 0.5) * scale - 0.5

    image, landmarks = tf.cond(
        tf.logical_and(tf.equal(height, size), tf.equal(width, size)),
        lambda: (image, landmarks),
        resize,
    )
    image.set_shape([size, size, 3])
    return image, landmarks


def decode_pair(serialized, shard="<memory>", index=-1, keys=None):
    """Parses and checks one record -> dict of uint8 `[H, W, 3]` images and `[68, 2]` points,
    at the size the record stores: the deterministic, expensive part of `parse_pair`
    (what `input.cache` keeps). `keys` (default: all of `parse_pair`'s) limits what is
    decoded; `shard`/`index` only feed the error messages.
    """
    shard = tf.convert_to_tensor(shard, tf.string)
    index = tf.cast(index, tf.int64)
    features = tf.io.parse_single_example(serialized, _FEATURES)
    version = features["schema_version"]
    problem = tf.strings.join(
        ["schema version ", tf.strings.as_string(version), f", expected {SCHEMA_VERSION}"]
    )
    with tf.control_dependencies(
        [_check(tf.equal(version, SCHEMA_VERSION), shard, index, problem)]
    ):
        sample = {key: features[key] for key in ("identity", "target_file", "guide_file")}
        for image_key, points_key in IMAGE_POINTS:
            if keys is None or image_key in keys:
                sample[image_key] = _decode_image(features[image_key], shard, index, image_key)
                sample[points_key] = _decode_points(features[points_key], shard, index, points_key)
    return sample if keys is None else {key: sample[key] for key in keys}


def to_float_pair(sample, image_size=None):
    """`decode_pair`'s uint8 images as float32 `[0, 1]`, resized to `image_size` if given
    (their points moved along); other keys pass through."""
    sample = dict(sample)
    for image_key, points_key in IMAGE_POINTS:
        if image_key in sample:
            image = tf.image.convert_image_dtype(sample[image_key], tf.float32)
            points = sample[points_key]
            if image_size is not None:
                image, points = resize_with_landmarks(image, points, image_size)
            sample[image_key], sample[points_key] = image, points
    return sample


def parse_pair(serialized, image_size=None, shard="<memory>", index=-1):
    """Parses and checks one record -> dict of float `[0, 1]` images and `[68, 2]` points.

    Keys: `target`, `guide` (`[H, W, 3]`, resized to `image_size` if given), `landmarks`,
    `guide_landmarks`, `identity`, `target_file`, `guide_file`. `shard`/`index` only feed
    the error messages.
    """
    return to_float_pair(decode_pair(serialized, shard, index), image_size)


def validate_shard(path, limit=None) -> int:
    """Checks every record header (`check_record_headers`), then parses the first `limit`
    (default: all) records with `parse_pair`; returns the number of records parsed.

    Raises `BadRecordError` naming the shard and record for a hostile or truncated header,
    a schema violation, an image that is too large or does not decode, or a corrupt
    payload. Records are parsed in order, so the index of the first failure is the number
    that parsed before it.
    """
    path = os.fspath(path)
    check_record_headers(path)
    records = tf.data.TFRecordDataset(path)
    if limit is not None:
        records = records.take(limit)
    # The whole sample is the output: tf.data prunes ops whose results are unused, and an
    # image that is never returned would never be decoded.
    parsed = records.map(
        lambda serialized: parse_pair(serialized, shard=path),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    count = 0
    try:
        for _ in parsed:
            count += 1
    except tf.errors.DataLossError as error:
        raise BadRecordError(f"{printable(path)}: record {count}",
                             "corrupt record (payload CRC mismatch)") from error
    except tf.errors.OpError as error:
        raise BadRecordError(f"{printable(path)}: record {count}",
                             readable_problem(error.message)) from error
    except UnicodeDecodeError as error:
        # TF quotes an unparseable payload's raw bytes in its message, which then fails to
        # decode on the way to Python.
        raise BadRecordError(f"{printable(path)}: record {count}", _NOT_EXAMPLE) from error
    return count


def _record_assertion(message: str):
    """`(shard, index, problem)` from the text of a `parse_pair` assertion in a TF error
    message, or None if the error is not one of ours."""
    if _ASSERT_MARKER not in message:
        return None
    text = message.split(_ASSERT_MARKER, 1)[1].split("]", 1)[0]
    shard, _, rest = text.rpartition(": record ")
    index, _, problem = rest.partition(": ")
    return shard, index, problem


@contextlib.contextmanager
def record_errors(source):
    """Turns a bad record met while iterating a dataset of `parse_pair` records (training
    steps, a batch drawn with `next`) into `BadRecordError("<shard>: record <i>", problem)`.

    `source` (e.g. the shard pattern) is named when TF's error does not say the shard: a
    payload that is not a `tf.train.Example` (TF quotes its raw bytes, which then fail to
    decode on the way to Python). Other errors pass through unchanged.
    """
    try:
        yield
    except tf.errors.OpError as error:
        found = _record_assertion(error.message or "")
        if found is not None:
            shard, index, problem = found
            raise BadRecordError(f"{shard}: record {index}", problem) from None
        if _PARSE_FAILURE not in (error.message or ""):
            raise
        raise BadRecordError(printable(source), f"a record's {_NOT_EXAMPLE}") from None
    except UnicodeDecodeError:
        raise BadRecordError(printable(source), f"a record's {_NOT_EXAMPLE}") from None


def readable_problem(message: str) -> str:
    """The problem in a TF op error from `parse_pair`: our assertion's text if there is one
    (without its `<shard>: record <i>: ` prefix), else the cleaned first line."""
    found = _record_assertion(message)
    if found:
        return found[2]
    return _NOT_EXAMPLE if _PARSE_FAILURE in message else first_line(message)
