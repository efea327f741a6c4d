"""The TFRecord schema of one training pair, and its writer.

One `tf.train.Example` per pair (ground truth `I`, guide `I_g`):

| key | type | meaning |
| --- | --- | --- |
| `schema_version` | int64 | `SCHEMA_VERSION`; a record without it reads as version 0 |
| `target`, `guide` | bytes | encoded PNG or JPEG, RGB |
| `landmarks`, `guide_landmarks` | 136 floats | 68 `(x, y)` pixel points of the stored image |
| `identity` | bytes | person id (UTF-8), may be empty |
| `target_file`, `guide_file` | bytes | source file names, for error messages and audits |

This module owns the schema: the writer here and the parse spec `FEATURES` that
`gfrnet_tf.data.parsing` reads records with. The other jobs around a shard have their own
modules: `framing` (TFRecord header checks before TF opens a shard), `parsing` (in-graph
decoder) and `validation` (start-up check of a shard, TF errors as `BadRecordError`).
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from gfrnet_tf.errors import BadRecordError
from gfrnet_tf.ibug68 import NUM_LANDMARKS

SCHEMA_VERSION = 1

# Fixed-length features get defaults so a missing key becomes a readable check failure
# in `parsing` instead of parse_single_example's "Feature: x (data type: ...) is required".
FEATURES = {
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
