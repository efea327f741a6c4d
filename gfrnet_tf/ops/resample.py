"""Bilinear resampling with the exact semantics of `tfa.image.resampler`, in core TF ops.

TensorFlow Addons no longer imports on TF >= 2.16 and its custom op could neither be served
by stock TF Serving nor converted to TFLite builtins, so the project owns this op
(DESIGN.md, "Warping op").
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from gfrnet_tf.ops.grid import denormalize_points


def resample(data, warp):
    """Samples `data [B, H, W, C]` at pixel `(x, y)` positions `warp [B, ..., 2]` -> `[B, ..., C]`.

    Bilinear with weights from `floor` (as tfa): a sample at `(x, y)` mixes the pixels
    `(floor(x) + {0, 1}, floor(y) + {0, 1})`; each corner outside the image contributes zero
    on its own, so values fade to zero over the one-pixel band around the image, and points
    with `x <= -1`, `y <= -1`, `x >= W` or `y >= H` give exactly zero (also in the gradient,
    as tfa). The warp may have any spatial shape, independent of the data's.
    """
    data = tf.convert_to_tensor(data)
    warp = tf.convert_to_tensor(warp, dtype=data.dtype)
    data_shape = tf.shape(data)
    batch, height, width, channels = data_shape[0], data_shape[1], data_shape[2], data_shape[3]
    warp_shape = tf.shape(warp)
    points = tf.reshape(warp, [batch, -1, 2])

    x, y = points[..., 0], points[..., 1]
    x0, y0 = tf.floor(x), tf.floor(y)
    fx, fy = x - x0, y - y0
    inside = (x > -1.0) & (y > -1.0) & (x < tf.cast(width, x.dtype)) & (y < tf.cast(height, y.dtype))
    x0, y0 = tf.cast(x0, tf.int32), tf.cast(y0, tf.int32)

    table = tf.reshape(data, [-1, channels])
    offset = tf.range(batch)[:, tf.newaxis] * (height * width)
    result = 0.0
    for dx, wx in ((0, 1.0 - fx), (1, fx)):
        for dy, wy in ((0, 1.0 - fy), (1, fy)):
            xi, yi = x0 + dx, y0 + dy
            valid = inside & (xi >= 0) & (xi < width) & (yi >= 0) & (yi < height)
            index = offset + tf.clip_by_value(yi, 0, height - 1) * width + tf.clip_by_value(xi, 0, width - 1)
            weight = tf.where(valid, wx * wy, 0.0)
            result += weight[..., tf.newaxis] * tf.gather(table, index)
    return tf.reshape(result, tf.concat([warp_shape[:-1], [channels]], axis=0))


def warp_image(image, phi):
    """Warps `image [B, H, W, C]` by the normalised flow `phi [B, h, w, 2]` -> `[B, h, w, C]`.

    A float32 `[-1, 1]` coordinate cannot hit every pixel centre exactly: the identity flow
    comes back as e.g. 2.9999998, and `floor` would then blend in the left neighbour (and
    take the left-sided gradient). Pixel coordinates within `2 * eps * (size - 1)` of an
    integer -- four times the worst round-trip error, below the resolution of the normalised
    flow itself -- are therefore snapped to it, with a straight-through gradient, so the
    identity flow reproduces the image exactly.
    """
    image = tf.convert_to_tensor(image)
    shape = tf.shape(image)
    xy = denormalize_points(tf.cast(phi, image.dtype), shape[1], shape[2])
    # denormalize_points(1, ...) is (W - 1, H - 1), the pixel length of the [-1, 1] span.
    tolerance = 2.0 * np.finfo(image.dtype.as_numpy_dtype).eps * denormalize_points(
        tf.ones([2], image.dtype), shape[1], shape[2]
    )
    nearest = tf.round(xy)
    snapped = tf.where(tf.abs(xy - nearest) <= tolerance, nearest, xy)
    return resample(image, xy + tf.stop_gradient(snapped - xy))
