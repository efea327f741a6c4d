"""Normalised <-> pixel coordinates for flows and landmarks.

Normalised coordinates are align-corners style: -1 and 1 are the centres of the first and
last pixel, so `x_n = 2 * x / (W - 1) - 1` (docs/DESIGN.md). Images must be at least 2 pixels
wide and high for this to be defined.
"""

from __future__ import annotations

import tensorflow as tf


def _size_xy(height, width, dtype):
    """`(W - 1, H - 1)` as a `[2]` tensor, matching the `(x, y)` order of points."""
    return tf.cast(tf.stack([width, height]), dtype) - 1.0


def normalize_points(xy, height, width):
    """Pixel `(x, y)` points `[..., 2]` -> `[-1, 1]` coordinates of a `height x width` image."""
    xy = tf.convert_to_tensor(xy)
    return 2.0 * xy / _size_xy(height, width, xy.dtype) - 1.0


def denormalize_points(xy_n, height, width):
    """Inverse of `normalize_points`: `[-1, 1]` `(x, y)` -> pixel coordinates."""
    xy_n = tf.convert_to_tensor(xy_n)
    return (xy_n + 1.0) * 0.5 * _size_xy(height, width, xy_n.dtype)


def identity_grid(height, width, dtype=tf.float32):
    """The flow that samples every pixel at itself: `[1, height, width, 2]` normalised `(x, y)`."""
    # Normalising the integer mesh (rather than `tf.linspace`) halves the rounding error,
    # which `warp_image` relies on to map the identity flow back onto exact pixel centres.
    grid_x, grid_y = tf.meshgrid(tf.range(width, dtype=dtype), tf.range(height, dtype=dtype))
    return tf.expand_dims(normalize_points(tf.stack([grid_x, grid_y], axis=-1), height, width), 0)
