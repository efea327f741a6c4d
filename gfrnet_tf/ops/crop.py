"""The local discriminator's view: the face region spanned by the 68 landmarks.

GFRNet's local discriminator sees the minimal box around the landmarks of the clean image
`I` (DESIGN.md, Models), cropped and resized to a fixed size inside the graph so the crop
follows each sample's face without a Python loop.
"""

from __future__ import annotations

import tensorflow as tf


def landmark_boxes(landmarks_px, height, width, margin=0.1):
    """`[B, N, 2]` pixel `(x, y)` landmarks -> `[B, 4]` normalised boxes `(y1, x1, y2, x2)`.

    The minimal box around the points, each side pushed out by `margin` times the box's
    extent along that axis, then clipped to the image. Coordinates are normalised the way
    `tf.image.crop_and_resize` reads them: `y = 1` is the centre of the last row (`H - 1`),
    not its far edge, so a box is exactly the pixel range it names.
    """
    landmarks_px = tf.convert_to_tensor(landmarks_px, tf.float32)
    low = tf.reduce_min(landmarks_px, axis=-2)
    high = tf.reduce_max(landmarks_px, axis=-2)
    pad = margin * (high - low)
    last = tf.cast(tf.stack([width, height]), tf.float32) - 1.0
    low = tf.clip_by_value(low - pad, 0.0, last) / last
    high = tf.clip_by_value(high + pad, 0.0, last) / last
    return tf.stack([low[..., 1], low[..., 0], high[..., 1], high[..., 0]], axis=-1)


def crop_to_landmarks(images, landmarks_px, size, margin=0.1):
    """Crops each image `[B, H, W, C]` to its landmark box and resizes it (bilinear) to `size`.

    `size` is an int (square) or `(height, width)`. Gradients flow to the images, which the
    local adversarial loss needs; the boxes come from data and get none.
    """
    images = tf.convert_to_tensor(images)
    shape = tf.shape(images)
    boxes = tf.stop_gradient(landmark_boxes(landmarks_px, shape[1], shape[2], margin))
    crop_size = [size, size] if isinstance(size, int) else list(size)
    return tf.image.crop_and_resize(images, boxes, tf.range(shape[0]), crop_size)
