"""The iBUG-300W 68-point mirror permutation, a horizontal flip that keeps a sample
consistent, and the face's symmetry axis estimated from the same mirror pairs.

A mirrored face has its left eye where the right one was, so after mirroring x the point
indices must be permuted too, or point 37 (left eye corner) would sit on the right eye and
the landmark loss would pull WarpNet towards a mirrored face.
"""

from __future__ import annotations

import tensorflow as tf

NUM_LANDMARKS = 68
# Each image of a pair and the key of its landmarks.
IMAGE_POINTS = (("target", "landmarks"), ("guide", "guide_landmarks"))


def _mirror_permutation():
    """0-based index of each point's mirror partner, from the 1-based 300W pairs."""
    pairs = [(j, 18 - j) for j in range(1, 9)]  # jaw 1-17, 9 (chin) is its own mirror
    pairs += [(18 + k, 27 - k) for k in range(5)]  # eyebrows
    pairs += [(32, 36), (33, 35)]  # nostrils; the bridge 28-31 and 34 stay
    pairs += [(37, 46), (38, 45), (39, 44), (40, 43), (41, 48), (42, 47)]  # eyes
    pairs += [(49, 55), (50, 54), (51, 53), (56, 60), (57, 59)]  # outer lip
    pairs += [(61, 65), (62, 64), (66, 68)]  # inner lip
    permutation = list(range(NUM_LANDMARKS))
    for a, b in pairs:
        permutation[a - 1], permutation[b - 1] = b - 1, a - 1
    return tuple(permutation)


MIRROR_PERMUTATION = _mirror_permutation()

# Points whose midpoint with their mirror partner lies on the face's symmetry axis: the
# chin (1-based 9) and every inner-face point (brows, nose, eyes, lips: 1-based 18-68),
# each mirror pair once. The rest of the jaw (1-8, 10-17) is left out: under yaw its
# points follow the silhouette, not fixed places on the face, so their midpoints leave
# the axis. 10 midline points + 21 pair midpoints.
SYMMETRY_POINTS = tuple(
    i for i in range(NUM_LANDMARKS) if i == 8 or 17 <= i <= MIRROR_PERMUTATION[i]
)


def flip_landmarks(landmarks, width):
    """Mirrors `[..., 68, 2]` pixel `(x, y)` points of an image `width` wide: x -> W - 1 - x."""
    landmarks = tf.convert_to_tensor(landmarks)
    mirrored = tf.stack(
        [tf.cast(width, landmarks.dtype) - 1.0 - landmarks[..., 0], landmarks[..., 1]], axis=-1
    )
    return tf.gather(mirrored, MIRROR_PERMUTATION, axis=-2)


def flip_flow(flow):
    """Mirrors a normalised flow `[..., H, W, 2]` whose target AND guide are both mirrored.

    Target pixel x now shows what W-1-x showed, and the guide point it sampled moved to
    the mirrored place, whose normalised x is the negative: mirror the field, negate x.
    """
    mirrored = tf.reverse(flow, axis=[-2])
    return mirrored * tf.constant([-1.0, 1.0], flow.dtype)


def flip_sample(sample):
    """Mirrors one unbatched sample dict: images `[H, W, 3]`, both landmark sets, the flow."""
    flipped = dict(sample)
    for image_key, points_key in IMAGE_POINTS:
        image = sample[image_key]
        flipped[image_key] = tf.reverse(image, axis=[-2])
        flipped[points_key] = flip_landmarks(sample[points_key], tf.shape(image)[-2])
    if "flow" in sample:
        flipped["flow"] = flip_flow(sample["flow"])
    return flipped


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
