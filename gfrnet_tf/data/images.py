"""uint8 <-> model-range conversions: the only place the `[-1, 1]` scaling is written."""

from __future__ import annotations

import tensorflow as tf


def to_model_range(images):
    """uint8 RGB, or float RGB in `[0, 1]` (the pipeline's working range) -> float32 `[-1, 1]`."""
    images = tf.convert_to_tensor(images)
    if images.dtype == tf.uint8:
        return tf.cast(images, tf.float32) / 127.5 - 1.0
    return tf.cast(images, tf.float32) * 2.0 - 1.0


def to_uint8(images):
    """float `[-1, 1]` -> uint8, rounded to nearest and saturated (model outputs overshoot).

    Not `tf.image.convert_image_dtype`: it scales by 255.5 and truncates, which is off by
    one for a third of the values and would break uint8 -> model -> uint8 round trips.
    """
    unit = (tf.convert_to_tensor(images, tf.float32) + 1.0) * 0.5
    return tf.cast(tf.round(tf.clip_by_value(unit, 0.0, 1.0) * 255.0), tf.uint8)
