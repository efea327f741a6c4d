"""Local-discriminator crop: boxes by hand, crops against numpy slices and crop_and_resize."""

import numpy as np
import pytest
import tensorflow as tf

from gfrnet_tf.ops import crop_to_landmarks, landmark_boxes


def rectangle_landmarks(x1, y1, x2, y2, count=68, seed=0):
    """`count` points inside the pixel rectangle, its four corners among them."""
    rng = np.random.default_rng(seed)
    points = np.stack([rng.uniform(x1, x2, count), rng.uniform(y1, y2, count)], -1)
    points[:4] = [(x1, y1), (x2, y1), (x1, y2), (x2, y2)]
    return rng.permutation(points).astype(np.float32)


def test_boxes_are_normalised_to_pixel_centres():
    landmarks = rectangle_landmarks(3, 2, 10, 9)[None]
    expected = [[2 / 11, 3 / 14, 9 / 11, 10 / 14]]
    np.testing.assert_allclose(landmark_boxes(landmarks, 12, 15, margin=0.0), expected)


def test_margin_expands_each_side_and_is_clipped_to_the_image():
    # Box x 2..10 (extent 8), y 4..6 (extent 2); margin 0.5 pushes x to -2..14, y to 3..7.
    landmarks = rectangle_landmarks(2, 4, 10, 6)[None]
    expected = [[3 / 9, 0.0, 7 / 9, 1.0]]  # x clipped to 0..11 in a 10 x 12 image
    np.testing.assert_allclose(landmark_boxes(landmarks, 10, 12, margin=0.5), expected, rtol=1e-6)


def test_crop_of_exact_pixel_box_equals_numpy_slice_per_sample():
    images = np.random.default_rng(1).normal(size=(2, 16, 20, 3)).astype(np.float32)
    rectangles = [(3, 2, 10, 9), (11, 5, 18, 12)]  # (x1, y1, x2, y2), both 8 x 8 pixels
    landmarks = np.stack([rectangle_landmarks(*r, seed=i) for i, r in enumerate(rectangles)])
    crops = crop_to_landmarks(images, landmarks, size=8, margin=0.0).numpy()
    for crop, image, (x1, y1, x2, y2) in zip(crops, images, rectangles):
        np.testing.assert_allclose(crop, image[y1 : y2 + 1, x1 : x2 + 1], atol=1e-5)


def test_crop_resizes_to_requested_shape_and_passes_gradients_to_images():
    images = tf.random.normal((2, 32, 32, 3))
    landmarks = np.stack([rectangle_landmarks(4, 6, 20, 25), rectangle_landmarks(0, 0, 31, 31)])
    with tf.GradientTape() as tape:
        tape.watch(images)
        total = tf.reduce_sum(crop_to_landmarks(images, landmarks, size=(12, 10), margin=0.0))
    gradient = tape.gradient(total, images).numpy()
    # Bilinear weights sum to one per output value: 12 * 10 * 3 per image, all from the box.
    np.testing.assert_allclose(gradient.sum(axis=(1, 2, 3)), [360.0, 360.0], rtol=1e-5)
    np.testing.assert_allclose(gradient[0, 6:26, 4:21].sum(), 360.0, rtol=1e-5)
    assert crop_to_landmarks(images, landmarks, size=(12, 10)).shape == (2, 12, 10, 3)


@pytest.mark.parametrize("size", [1, 7, (5, 13)])
def test_crop_samples_exactly_where_crop_and_resize_does(size):
    images = tf.random.normal((3, 24, 20, 2))
    landmarks = np.random.default_rng(2).uniform(-3, 26, size=(3, 68, 2)).astype(np.float32)
    boxes = landmark_boxes(landmarks, 24, 20, margin=0.2)
    crop_size = [size, size] if isinstance(size, int) else list(size)
    expected = tf.image.crop_and_resize(images, boxes, tf.range(3), crop_size)
    crops = crop_to_landmarks(images, landmarks, size, margin=0.2)
    np.testing.assert_allclose(crops.numpy(), expected.numpy(), atol=1e-5)


def test_crop_compiles_with_xla():
    images = tf.random.normal((2, 16, 16, 3))
    landmarks = np.random.default_rng(3).uniform(2, 14, size=(2, 68, 2)).astype(np.float32)
    compiled = tf.function(
        lambda image, points: crop_to_landmarks(image, points, 8), jit_compile=True
    )
    expected = crop_to_landmarks(images, landmarks, 8)
    # XLA contracts multiply-adds into FMAs, so the last bits differ.
    np.testing.assert_allclose(compiled(images, landmarks), expected, atol=1e-5)
