"""Eq. 4 degradation: identity setting, blur vs scipy, noise level, JPEG ordering, sampling."""

import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from gfrnet_tf.data import degrade
from gfrnet_tf.errors import BadConfigError

SEED = tf.constant([7, 11], tf.int64)


def _setting(blur=0.0, scale=1.0, noise=0.0, jpeg_quality=0):
    return degrade.fixed_degradation(
        {"blur": blur, "scale": scale, "noise": noise, "jpeg_quality": jpeg_quality}
    )


def _texture(size=64, seed=0):
    """Smooth shading plus fine texture, in [0.1, 0.9], like a face crop at low resolution."""
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = 0.5 + 0.2 * np.sin(6 * xx)[..., None] * np.cos(4 * yy)[..., None]
    return np.clip(base + 0.15 * rng.rand(size, size, 3), 0.1, 0.9).astype(np.float32)


def test_identity_setting_changes_only_the_8bit_rounding():
    image = _texture()
    out = degrade.degrade(image, _setting(), SEED).numpy()
    np.testing.assert_allclose(out, np.round(image * 255) / 255, atol=1e-6)
    assert np.abs(out - image).max() <= 0.5 / 255 + 1e-6


@pytest.mark.parametrize("rho", [1.0, 1.5, 2.0])
def test_blur_matches_scipy_gaussian_with_reflected_border(rho):
    # scipy's radius int(3 rho + 0.5) equals our ceil(3 rho) for these rho; "mirror" is
    # OpenCV's BORDER_REFLECT_101, the border we use.
    image = _texture()
    ours = degrade.gaussian_blur(image, tf.constant(rho)).numpy()
    expected = ndimage.gaussian_filter(image, sigma=(rho, rho, 0), mode="mirror", truncate=3.0)
    np.testing.assert_allclose(ours, expected, atol=2e-6)


@pytest.mark.parametrize("size", [(16, 12), (21, 17), (32, 24), (100, 77)])
def test_resize_matrices_match_tf_image_resize_bicubic_antialias(size):
    image = tf.random.stateless_uniform([32, 24, 3], [1, 2])
    expected = tf.image.resize(image, size, "bicubic", antialias=True)
    rows, cols = degrade.resize_matrix(32, size[0]), degrade.resize_matrix(24, size[1])
    ours = tf.einsum("hH,HWc,wW->hwc", rows, image, cols)
    np.testing.assert_allclose(ours.numpy(), expected.numpy(), atol=2e-5)


def test_high_frequency_energy_falls_as_blur_rises():
    image = _texture()
    energies = []
    for rho in degrade.paper_parameter_sets()["blur"][::4]:  # 0, 1.3, 1.7, 2.1, 2.5, 2.9
        blurred = degrade.degrade(image, _setting(blur=rho), SEED).numpy()
        energies.append(np.mean(ndimage.laplace(blurred[..., 0]) ** 2))
    assert all(a > b for a, b in zip(energies, energies[1:])), energies
    assert energies[-1] < 0.05 * energies[0]


@pytest.mark.parametrize("sigma", [2.0, 5.0])
def test_measured_noise_std_matches_sigma_on_the_255_scale(sigma):
    flat = np.full((64, 64, 3), 0.5, np.float32)
    out = degrade.degrade(flat, _setting(noise=sigma), SEED).numpy()
    # q = 0 still rounds to 8 bits, adding 1/12 to the variance on the 255 scale.
    expected = np.sqrt(sigma**2 + 1.0 / 12.0)
    assert abs(np.std(out) * 255 - expected) < 0.05 * expected


def test_lower_jpeg_quality_gives_larger_error():
    image = _texture(seed=3)
    errors = [
        np.mean(np.abs(degrade.degrade(image, _setting(jpeg_quality=q), SEED).numpy() - image))
        for q in (0, 40, 25, 10)
    ]
    assert all(a < b for a, b in zip(errors, errors[1:])), errors


def test_downscale_is_antialiased_and_returns_the_input_size():
    # A one-pixel checkerboard has all its energy at Nyquist: an antialiased 4x downscale
    # must remove it (grey), a plain subsample would keep a full-contrast pattern.
    checker = (np.indices((64, 64)).sum(0) % 2).astype(np.float32)
    image = np.repeat(checker[..., None], 3, -1)
    out = degrade.degrade(image, _setting(scale=4.0), SEED).numpy()
    assert out.shape == image.shape
    assert np.abs(out - 0.5).max() < 0.05


@pytest.mark.parametrize("shape", [(64, 64), (48, 32)])
def test_smooth_image_survives_moderate_blur_and_downscaling(shape):
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]] / 64
    smooth = np.repeat((0.5 + 0.3 * np.sin(3 * xx) * np.cos(2 * yy))[..., None], 3, -1)
    out = degrade.degrade(smooth.astype(np.float32), _setting(blur=1.0, scale=2.0), SEED).numpy()
    assert out.shape == smooth.shape
    assert np.abs(out - smooth)[4:-4, 4:-4].max() < 2 / 255


def test_same_seed_same_result_other_seed_other_noise():
    image = _texture()
    setting = _setting(blur=1.2, scale=2.5, noise=4.0, jpeg_quality=30)
    first = degrade.degrade(image, setting, SEED).numpy()
    np.testing.assert_array_equal(first, degrade.degrade(image, setting, SEED).numpy())
    other = degrade.degrade(image, setting, tf.constant([7, 12], tf.int64)).numpy()
    assert np.abs(first - other).mean() > 0.5 / 255


def test_sampling_covers_each_set_and_stays_inside_it():
    sets = degrade.paper_parameter_sets()
    draws = [degrade.sample_degradation(tf.constant([0, i]), sets) for i in range(300)]
    for name in degrade.PARAMETERS:
        values = {round(float(d[name]), 4) for d in draws}
        allowed = {round(float(v), 4) for v in sets[name]}
        assert values <= allowed, name
        if len(allowed) <= 32:  # 300 draws cover a set of <= 32 values w.p. > 0.99
            assert values == allowed, name
    assert draws[0]["jpeg_quality"].dtype == tf.int32


def test_paper_sets_are_the_papers():
    sets = degrade.paper_parameter_sets()
    assert (
        len(sets["blur"]) == 22 and sets["blur"][:3] == (0.0, 1.0, 1.1) and sets["blur"][-1] == 3.0
    )
    assert len(sets["scale"]) == 71 and sets["scale"][-1] == 8.0
    assert sets["noise"] == tuple(float(v) for v in range(8))
    assert sets["jpeg_quality"] == (0,) + tuple(range(10, 41))


@pytest.mark.parametrize(
    "name, values, size",
    [
        ("scale", (0.5, 2.0), 64),
        ("jpeg_quality", (0, 101), 64),
        ("noise", (), 64),
        ("blur", (3.0,), 9),
    ],
)
def test_unusable_sets_raise_bad_config(name, values, size):
    sets = dict(degrade.paper_parameter_sets(), **{name: values})
    with pytest.raises(BadConfigError, match=name):
        degrade.check_parameter_sets(sets, size)


@pytest.mark.parametrize("small, size", [((4, 4), (64, 64)), ((16, 12), (64, 48))])
def test_separable_bicubic_upscale_matches_tf_image_resize(small, size):
    image = tf.constant(np.random.RandomState(3).uniform(-1, 1, (*small, 2)), tf.float32)
    ours = degrade.resize_separable(image, *size)
    np.testing.assert_allclose(
        ours.numpy(), tf.image.resize(image, size, "bicubic").numpy(), atol=2e-6
    )
