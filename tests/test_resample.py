"""`gfrnet_tf.ops.resample` / `warp_image` against an independent numpy loop of tfa's kernel.

Gradient convention (tfa's `ResamplerGrad` kernel): the corner weights come from
`floor(x)`, and `floor` is treated as a constant, so the warp gradient is the derivative of
the bilinear patch the point lies in. On the cell `[x0, x0 + 1)` the sample is linear in
`x`, hence at an integer `x` the gradient is the right-sided difference quotient, which a
forward finite difference reproduces exactly (up to rounding). Points outside the open box
`(-1, W) x (-1, H)` have zero value and zero gradient, even at `x == -1` where the right-
sided derivative would not be zero.
"""

import numpy as np
import pytest
import tensorflow as tf

from gfrnet_tf.ops import denormalize_points, identity_grid, normalize_points, resample, warp_image


def reference_resample(data, warp):
    """tfa's CPU kernel, transcribed as a plain loop over points, corners and channels."""
    batch, height, width, channels = data.shape
    points = warp.reshape(batch, -1, 2)
    out = np.zeros((batch, points.shape[1], channels), np.float64)
    for b in range(batch):
        for n, (x, y) in enumerate(points[b]):
            if not (-1 < x < width and -1 < y < height):
                continue
            x0, y0 = int(np.floor(x)), int(np.floor(y))
            for xi, wx in ((x0, x0 + 1 - x), (x0 + 1, x - x0)):
                for yi, wy in ((y0, y0 + 1 - y), (y0 + 1, y - y0)):
                    if 0 <= xi < width and 0 <= yi < height:
                        out[b, n] += wx * wy * data[b, yi, xi]
    return out.reshape(warp.shape[:-1] + (channels,))


def reference_warp_gradient(data, warp, upstream, step=1e-7):
    """d sum(upstream * resample) / d warp by forward differences (tfa's one-sided rule)."""
    base = np.sum(upstream * reference_resample(data, warp))
    grad = np.zeros_like(warp)
    height, width = data.shape[1:3]
    for index in np.ndindex(warp.shape):
        x, y = warp[index[:-1]]
        if not (-1 < x < width and -1 < y < height):
            continue
        moved = warp.copy()
        moved[index] += step
        grad[index] = (np.sum(upstream * reference_resample(data, moved)) - base) / step
    return grad


def special_points(height, width):
    """Integer, border, fade band, fully outside and fractional `(x, y)` coordinates."""
    xs = [-1.5, -1.0, -0.5, 0.0, 0.25, 1.0]
    xs += [width - 1.5, width - 1.0, width - 0.5, width, width + 2.0]
    ys = [-1.0, -0.25, 0.0, 2.0, height - 1.0, height - 0.75, height]
    return np.array([(x, y) for x in xs for y in ys], np.float64)


def test_matches_reference_on_special_and_random_points():
    rng = np.random.default_rng(1)
    data = rng.normal(size=(2, 9, 7, 3)).astype(np.float32)
    special = special_points(9, 7)
    random = rng.uniform(-2.0, 10.0, size=(2, 40, 2))
    warp = np.concatenate([np.broadcast_to(special, (2,) + special.shape), random], axis=1)
    warp = warp.astype(np.float32)
    expected = reference_resample(data, warp)
    np.testing.assert_allclose(resample(data, warp).numpy(), expected, atol=1e-6)


def test_warp_of_other_spatial_shape_and_rank():
    rng = np.random.default_rng(2)
    data = rng.normal(size=(2, 9, 7, 4)).astype(np.float32)
    for shape in [(2, 5, 11, 2), (2, 13, 2), (2, 3, 2, 5, 2)]:
        warp = rng.uniform(-1.5, 9.5, size=shape).astype(np.float32)
        out = resample(data, warp).numpy()
        assert out.shape == shape[:-1] + (4,)
        np.testing.assert_allclose(out, reference_resample(data, warp), atol=1e-6)


def test_border_fades_to_zero_over_one_pixel():
    ones = np.ones((1, 3, 4, 1), np.float32)
    warp = np.array(
        [
            [
                [-1.0, 1.0],
                [-0.75, 1.0],
                [-0.5, 1.0],
                [0.0, 1.0],
                [3.0, 1.0],
                [3.5, 1.0],
                [4.0, 1.0],
                [1.0, -0.5],
                [-0.5, -0.5],
                [1.0, 2.25],
            ]
        ],
        np.float32,
    )
    expected = [0.0, 0.25, 0.5, 1.0, 1.0, 0.5, 0.0, 0.5, 0.25, 0.75]
    np.testing.assert_allclose(resample(ones, warp).numpy()[0, :, 0], expected, atol=1e-7)


def test_integer_coordinates_copy_pixels():
    rng = np.random.default_rng(3)
    data = rng.normal(size=(1, 6, 5, 2)).astype(np.float32)
    ys, xs = np.mgrid[0:6, 0:5]
    order = rng.permutation(30)
    warp = np.stack([xs.ravel()[order], ys.ravel()[order]], -1)[None].astype(np.float32)
    expected = data[0, ys.ravel()[order], xs.ravel()[order]][None]
    np.testing.assert_array_equal(resample(data, warp).numpy(), expected)


def test_warp_gradient_matches_one_sided_rule_at_integers_and_border():
    rng = np.random.default_rng(4)
    data = rng.normal(size=(1, 5, 4, 2))
    warp = special_points(5, 4)[None]
    upstream = rng.normal(size=warp.shape[:-1] + (2,))
    with tf.GradientTape() as tape:
        warp_t = tf.constant(warp)
        tape.watch(warp_t)
        loss = tf.reduce_sum(upstream * resample(tf.constant(data), warp_t))
    expected = reference_warp_gradient(data, warp, upstream)
    np.testing.assert_allclose(tape.gradient(loss, warp_t).numpy(), expected, atol=1e-5)


def test_gradients_match_finite_differences_at_fractional_points():
    rng = np.random.default_rng(5)
    data = tf.constant(rng.normal(size=(2, 4, 5, 2)))
    # Fractional coordinates away from the kinks at integers, some in the fade band.
    cells = np.floor(rng.uniform(-1, 5, size=(2, 3, 2, 2)))
    warp = tf.constant(cells + rng.uniform(0.1, 0.9, size=cells.shape))
    fn = tf.function(resample)
    theoretical, numerical = tf.test.compute_gradient(fn, [data, warp], delta=1e-4)
    for analytic, numeric in zip(theoretical, numerical):
        np.testing.assert_allclose(analytic, numeric, atol=1e-6)


def test_data_gradient_scatters_the_bilinear_weights():
    data = tf.zeros((1, 2, 3, 1), tf.float64)
    warp = tf.constant([[[0.25, 0.5], [2.5, 0.0], [-0.5, 1.0]]], tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(data)
        loss = tf.reduce_sum(resample(data, warp))
    # (0.25, 0.5): 0.375 / 0.125 on both rows; (2.5, 0): 0.5 on (2, 0), its right half is
    # outside; (-0.5, 1): 0.5 on (0, 1), its left half is outside.
    expected = [[0.375, 0.125, 0.5], [0.375 + 0.5, 0.125, 0.0]]
    np.testing.assert_allclose(tape.gradient(loss, data).numpy()[0, :, :, 0], expected)


def test_dynamic_shapes_in_tf_function():
    spec = [tf.TensorSpec([None, None, None, None]), tf.TensorSpec([None, None, None, 2])]
    fn = tf.function(resample, input_signature=spec)
    rng = np.random.default_rng(6)
    for data_shape, warp_shape in [((1, 9, 7, 3), (1, 5, 11, 2)), ((3, 4, 6, 1), (3, 2, 2, 2))]:
        data = rng.normal(size=data_shape).astype(np.float32)
        warp = rng.uniform(-1.5, 9.5, size=warp_shape).astype(np.float32)
        expected = reference_resample(data, warp)
        np.testing.assert_allclose(fn(data, warp).numpy(), expected, atol=1e-6)


def test_xla_matches_eager_including_gradients():
    rng = np.random.default_rng(7)
    data = tf.constant(rng.normal(size=(2, 9, 7, 3)).astype(np.float32))
    warp = tf.constant(rng.uniform(-1.5, 9.5, size=(2, 5, 11, 2)).astype(np.float32))

    def value_and_gradients(data, warp):
        with tf.GradientTape() as tape:
            tape.watch([data, warp])
            loss = tf.reduce_sum(tf.sin(resample(data, warp)))
        return [loss, *tape.gradient(loss, [data, warp])]

    eager = value_and_gradients(data, warp)
    compiled = tf.function(value_and_gradients, jit_compile=True)(data, warp)
    for a, b in zip(eager, compiled):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)


@pytest.mark.parametrize("height, width", [(32, 32), (37, 64), (2, 255)])
def test_identity_flow_returns_the_image_exactly(height, width):
    image = tf.random.normal((2, height, width, 3))
    phi = tf.tile(identity_grid(height, width), [2, 1, 1, 1])
    np.testing.assert_array_equal(warp_image(image, phi).numpy(), image.numpy())


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16, tf.float64])
def test_identity_flow_is_exact_in_every_float_dtype(dtype):
    image = tf.cast(tf.random.normal((1, 20, 30, 3)), dtype)
    warped = warp_image(image, identity_grid(20, 30, dtype))
    np.testing.assert_array_equal(tf.cast(warped, tf.float32), tf.cast(image, tf.float32))


def test_warp_image_uses_align_corners_pixel_centres():
    image = np.arange(2 * 3 * 4, dtype=np.float32).reshape(1, 3, 4, 2)
    # Half a pixel right and a quarter down from pixel (1, 1) in normalised units.
    phi = np.array([[[[2 * 1.5 / 3 - 1, 2 * 1.25 / 2 - 1]]]], np.float32)
    expected = reference_resample(image, np.array([[[[1.5, 1.25]]]], np.float32))
    np.testing.assert_allclose(warp_image(image, phi).numpy(), expected, atol=1e-5)


def test_warp_image_gradient_is_resample_gradient_times_half_extent():
    """d/dphi = (size - 1) / 2 * d/dpixel, also for snapped (identity) points."""
    rng = np.random.default_rng(9)
    image = tf.constant(rng.normal(size=(1, 6, 9, 2)))
    moved = rng.uniform(-0.2, 0.2, size=(1, 6, 9, 2)) * (rng.random((1, 6, 9, 1)) < 0.5)
    phi = identity_grid(6, 9, tf.float64) + moved  # half the points stay on pixel centres
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(phi)
        pixels = denormalize_points(phi, 6, 9)
        warped = warp_image(image, phi)
        nearest = tf.round(pixels)  # integer up to float64 noise: snapped, as warp_image does
        on_centre = tf.where(tf.abs(pixels - nearest) < 1e-9, nearest, pixels)
        snapped = pixels + tf.stop_gradient(on_centre - pixels)
        resampled = resample(image, snapped)
    upstream = rng.normal(size=warped.shape)
    by_phi = tape.gradient(warped, phi, output_gradients=upstream).numpy()
    by_pixel = tape.gradient(resampled, pixels, output_gradients=upstream).numpy()
    np.testing.assert_allclose(by_phi, by_pixel * [4.0, 2.5], atol=1e-9)


def test_identity_grid_values_and_point_round_trip():
    grid = identity_grid(3, 5).numpy()
    assert grid.shape == (1, 3, 5, 2)
    np.testing.assert_allclose(grid[0, 0, :, 0], [-1.0, -0.5, 0.0, 0.5, 1.0])
    np.testing.assert_allclose(grid[0, :, 0, 1], [-1.0, 0.0, 1.0])
    points = np.random.default_rng(8).uniform(-5, 70, size=(2, 68, 2)).astype(np.float32)
    normalised = normalize_points(points, 48, 64)
    np.testing.assert_allclose(normalised[..., 0], 2 * points[..., 0] / 63 - 1, rtol=1e-6)
    np.testing.assert_allclose(denormalize_points(normalised, 48, 64).numpy(), points, atol=1e-4)


@pytest.mark.parametrize(
    "data_shape, warp_shape, message",
    [
        ((9, 7, 3), (1, 4, 2), "data must be"),
        ((1, 9, 7, 3), (1, 4, 3), "warp must be"),
        ((1, 9, 7, 3), (4,), "warp must be"),
        ((2, 9, 7, 3), (3, 4, 2), "batch sizes differ"),
    ],
)
def test_bad_shapes_fail_with_a_readable_message(data_shape, warp_shape, message):
    with pytest.raises(ValueError, match=message):
        resample(tf.zeros(data_shape), tf.zeros(warp_shape))


def test_integer_data_fails_with_a_readable_message():
    with pytest.raises(ValueError, match="float tensor, not uint8"):
        resample(tf.zeros((1, 4, 4, 3), tf.uint8), tf.zeros((1, 2, 2)))
