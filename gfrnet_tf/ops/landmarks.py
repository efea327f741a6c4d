"""In-graph geometry of 68-point landmarks that losses and the data pipeline share."""

from __future__ import annotations

import tensorflow as tf

from gfrnet_tf.ibug68 import MIRROR_PERMUTATION, SYMMETRY_POINTS


def symmetry_axis(landmarks):
    """Unit direction `[..., 2]` of the face's symmetry axis from `[..., 68, 2]` points.

    The principal direction of the `SYMMETRY_POINTS` midpoints `(p_i + p_mirror(i)) / 2`,
    in closed form: angle `0.5 * atan2(2 c_xy, c_xx - c_yy)` of their 2x2 covariance. The
    axis is a line, so its sign is arbitrary (here `cos(angle) >= 0`); callers must not
    depend on it. Coordinates are whatever the points are in (pixels or normalised); the
    direction is the same for both on a square image.
    """
    landmarks = tf.convert_to_tensor(landmarks)
    mirrored = tf.gather(landmarks, [MIRROR_PERMUTATION[i] for i in SYMMETRY_POINTS], axis=-2)
    midpoints = 0.5 * (tf.gather(landmarks, SYMMETRY_POINTS, axis=-2) + mirrored)
    centred = midpoints - tf.reduce_mean(midpoints, axis=-2, keepdims=True)
    x, y = centred[..., 0], centred[..., 1]
    c_xx, c_yy, c_xy = (tf.reduce_mean(a * b, axis=-1) for a, b in ((x, x), (y, y), (x, y)))
    angle = 0.5 * tf.atan2(2.0 * c_xy, c_xx - c_yy)
    return tf.stack([tf.cos(angle), tf.sin(angle)], axis=-1)
