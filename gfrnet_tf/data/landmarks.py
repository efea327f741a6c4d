"""A horizontal flip that keeps a training sample consistent: images, both landmark sets
(mirrored and permuted with `ibug68.MIRROR_PERMUTATION`, or the landmark loss would pull
WarpNet towards a mirrored face) and the flow.
"""

from __future__ import annotations

import tensorflow as tf

from gfrnet_tf.ibug68 import MIRROR_PERMUTATION

# Each image of a pair and the key of its landmarks.
IMAGE_POINTS = (("target", "landmarks"), ("guide", "guide_landmarks"))


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
