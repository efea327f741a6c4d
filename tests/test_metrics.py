"""Metrics against independent references: numpy PSNR, scikit-image SSIM, hand examples."""

import numpy as np
import tensorflow as tf
from skimage.metrics import structural_similarity

from gfrnet_tf import ibug68, ops
from gfrnet_tf.evaluation import metrics


def _landmarks(rng, size=64):
    """68 random points inside a `size` image, outer eye corners 20 px apart."""
    points = rng.uniform(12, size - 12, (68, 2)).astype(np.float32)
    points[ibug68.RIGHT_EYE_OUTER] = (20.0, 24.0)
    points[ibug68.LEFT_EYE_OUTER] = (40.0, 24.0)
    return points


def _shifted_flow(size, shift_xy):
    """Normalised flow sampling the guide at `p + shift` (pixels) for every target pixel."""
    pixels_per_unit = (size - 1) / 2.0
    return ops.identity_grid(size, size) + np.asarray(shift_xy, np.float32) / pixels_per_unit


def test_psnr_matches_numpy_and_known_value():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-9, 10, a.shape), 0, 255).astype(np.uint8)
    mse = ((a.astype(np.float64) - b) ** 2).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(metrics.psnr(a, b), 10 * np.log10(255.0**2 / mse), rtol=1e-5)
    # Constant offset of 5 grey levels: MSE 25, PSNR = 10 log10(65025 / 25) = 34.1514 dB.
    zeros = np.zeros((1, 16, 16, 3), np.uint8)
    np.testing.assert_allclose(metrics.psnr(zeros, zeros + 5), [34.1514], atol=1e-4)
    # A perfect restoration counts as 100 dB, so means over a test set stay finite.
    np.testing.assert_array_equal(metrics.psnr(a, a), [100.0, 100.0])


def test_ssim_matches_scikit_image():
    rng = np.random.default_rng(2)
    smooth = tf.image.resize(rng.uniform(0, 255, (2, 8, 8, 3)), (48, 48), "bicubic").numpy()
    a = np.clip(smooth, 0, 255).astype(np.uint8)
    b = np.clip(a + rng.normal(0, 12, a.shape), 0, 255).astype(np.uint8)
    expected = [
        structural_similarity(
            x,
            y,
            channel_axis=-1,
            data_range=255,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
        for x, y in zip(a, b)
    ]
    np.testing.assert_allclose(metrics.ssim(a, b), expected, atol=2e-4)
    np.testing.assert_allclose(metrics.ssim(a, a), [1.0, 1.0], atol=1e-6)
    assert all(0.0 < value < 0.99 for value in expected)


def test_landmark_error_hand_example():
    reference = _landmarks(np.random.default_rng(3))
    # Every point 3 px right and 4 px down: 5 px off, inter-ocular distance 20 px.
    moved = reference + np.float32([3.0, 4.0])
    np.testing.assert_allclose(metrics.inter_ocular_distance(reference), 20.0)
    np.testing.assert_allclose(metrics.landmark_error(moved, reference), 0.25, rtol=1e-6)
    np.testing.assert_allclose(metrics.landmark_error(reference, reference), 0.0)


def test_warped_guide_error_is_zero_for_the_aligning_flow():
    target = _landmarks(np.random.default_rng(4))
    guide = target + np.float32([3.0, -2.0])  # the guide's face sits 3 px right, 2 px up
    aligning = _shifted_flow(64, (3.0, -2.0))
    identity = ops.identity_grid(64, 64)
    np.testing.assert_allclose(
        metrics.flow_at_points(aligning, target[None]), guide[None], atol=1e-3
    )
    np.testing.assert_allclose(
        metrics.warped_guide_landmark_error(aligning, target[None], guide[None]), [0.0], atol=1e-4
    )
    unwarped = np.hypot(3.0, 2.0) / 20.0
    np.testing.assert_allclose(
        metrics.unwarped_guide_landmark_error(target[None], guide[None]), [unwarped], rtol=1e-5
    )
    # The identity flow leaves the guide where it is: same error as no warp at all.
    np.testing.assert_allclose(
        metrics.warped_guide_landmark_error(identity, target[None], guide[None]),
        [unwarped],
        rtol=1e-4,
    )


def test_flow_end_point_error_in_pixels():
    true_flow = ops.identity_grid(33, 33)
    np.testing.assert_allclose(
        metrics.flow_end_point_error(_shifted_flow(33, (3.0, 4.0)), true_flow), [5.0], rtol=1e-5
    )
    # A third of the columns 3 px off in x, the rest exact: mean 1 px.
    partly = np.array(true_flow)
    partly[:, :, :11, 0] += 3.0 / 16.0
    np.testing.assert_allclose(metrics.flow_end_point_error(partly, true_flow), [1.0], rtol=1e-5)
