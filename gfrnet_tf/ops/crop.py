"""The local discriminator's view: the face region spanned by the 68 landmarks.

GFRNet's local discriminator sees the minimal box around the landmarks of the clean image
`I` (docs/DESIGN.md, Models), cropped and resized to a fixed size inside the graph so the crop
follows each sample's face without a Python loop.
"""

from __future__ import annotations

import tensorflow as tf

from gfrnet_tf.ops.resample import resample


def landmark_boxes(landmarks_px, height, width, margin=0.1):
    """`[B, N, 2]` pixel `(x, y)` landmarks -> `[B, 4]` normalised boxes `(y1, x1, y2, x2)`.

    The minimal box around the points, each side pushed out by `margin` times the box's
    extent along that axis, then clipped to the image. Coordinates are normalised the way
    `tf.image.crop_and_resize` reads them: `y = 1` is the centre of the last row (`H - 1`),
    not its far edge, so a box is exactly the pixel range it names.
    """
    low, high, last = _pixel_box(landmarks_px, height, width, margin)
    low, high = low / last, high / last
    return tf.stack([low[..., 1], low[..., 0], high[..., 1], high[..., 0]], axis=-1)


def crop_to_landmarks(images, landmarks_px, size, margin=0.1):
    """Crops each image `[B, H, W, C]` to its landmark box, resized (bilinear) to `size`.

    `size` is an int (square) or `(height, width)`. The samples are exactly those of
    `tf.image.crop_and_resize(images, landmark_boxes(...))`, but taken with `resample`:
    CropAndResize has no XLA kernel, and the training step needs `jit_compile=True` to run
    the warp fast on CPU (benchmarks/README.md). Gradients flow to the images, as the local
    adversarial loss needs; the boxes come from data and get none.
    """
    images = tf.convert_to_tensor(images)
    shape = tf.shape(images)
    low, high, _ = _pixel_box(landmarks_px, shape[1], shape[2], margin)
    low, high = tf.stop_gradient(low), tf.stop_gradient(high)
    crop_height, crop_width = (size, size) if isinstance(size, int) else size
    xs = low[:, 0:1] + _fractions(crop_width) * (high[:, 0:1] - low[:, 0:1])
    ys = low[:, 1:2] + _fractions(crop_height) * (high[:, 1:2] - low[:, 1:2])
    grid_x = tf.broadcast_to(tf.expand_dims(xs, 1), [shape[0], crop_height, crop_width])
    grid_y = tf.broadcast_to(tf.expand_dims(ys, 2), [shape[0], crop_height, crop_width])
    return resample(images, tf.cast(tf.stack([grid_x, grid_y], axis=-1), images.dtype))


def _pixel_box(landmarks_px, height, width, margin):
    """Box corners `(x, y)` in pixels, `[B, 2]` each, and `(W - 1, H - 1)` to normalise them."""
    landmarks_px = tf.convert_to_tensor(landmarks_px, tf.float32)
    low = tf.reduce_min(landmarks_px, axis=-2)
    high = tf.reduce_max(landmarks_px, axis=-2)
    pad = margin * (high - low)
    last = tf.cast(tf.stack([width, height]), tf.float32) - 1.0
    return tf.clip_by_value(low - pad, 0.0, last), tf.clip_by_value(high + pad, 0.0, last), last


def _fractions(count):
    """Where crop_and_resize puts `count` samples along a box side, as fractions of it."""
    if count == 1:
        return tf.constant([0.5])  # a single sample sits at the box centre
    return tf.range(count, dtype=tf.float32) / float(count - 1)
