"""The in-graph decoder of one record of the `records` schema, and its resize to a model size.

Inside `tf.data` a Python exception cannot be raised, so `decode_pair`/`parse_pair` carry
`(shard, index)` and their `tf.debugging.Assert`s put `"<shard>: record <i>: <problem>"`
into the op error (`validation` turns that text back into a `BadRecordError`).

Each image's size is read from its PNG/JPEG header (`gfrnet_tf.data.encoded`) and more than
`MAX_RECORD_PIXELS` is refused before decoding, so a small file cannot claim gigabytes.
"""

from __future__ import annotations

import tensorflow as tf

from gfrnet_tf.data.encoded import checked_header_size
from gfrnet_tf.data.landmarks import IMAGE_POINTS
from gfrnet_tf.data.records import FEATURES, SCHEMA_VERSION
from gfrnet_tf.ibug68 import NUM_LANDMARKS

# Records hold `image_size` px crops (256 in the paper's set-up); 16x that side is far
# beyond any real record and still bounds one decoded image to 48 MB (uint8) / 192 MB
# (float32), whereas a 12000x12000 PNG of a few hundred KB would need ~3 GB.
MAX_RECORD_PIXELS = 4096 * 4096
_POINT_VALUES = NUM_LANDMARKS * 2


def check_in_record(condition, shard, index, problem):
    """An assert whose message names the record: `<shard>: record <i>: <problem>`."""
    where = tf.strings.join([shard, ": record ", tf.strings.as_string(index), ": "])
    return tf.debugging.Assert(condition, [tf.strings.join([where, problem])])


def _decode_image(encoded, shard, index, name):
    """Decodes PNG/JPEG to uint8 `[H, W, 3]`, after checking from the header that it is a
    PNG or JPEG of at most `MAX_RECORD_PIXELS` pixels."""
    present = check_in_record(tf.strings.length(encoded) > 0, shard, index, f"no {name} image")
    with tf.control_dependencies([present]):
        size = checked_header_size(
            encoded,
            lambda condition, problem: check_in_record(
                condition, shard, index, tf.strings.join([f"{name} image ", problem])
            ),
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
    with tf.control_dependencies(
        [check_in_record(tf.equal(count, _POINT_VALUES), shard, index, problem)]
    ):
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
    features = tf.io.parse_single_example(serialized, FEATURES)
    version = features["schema_version"]
    problem = tf.strings.join(
        ["schema version ", tf.strings.as_string(version), f", expected {SCHEMA_VERSION}"]
    )
    with tf.control_dependencies(
        [check_in_record(tf.equal(version, SCHEMA_VERSION), shard, index, problem)]
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
