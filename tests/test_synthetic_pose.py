"""Synthetic-pose guides: the emitted flow undoes the warp, landmarks follow the image."""

import numpy as np
import pytest
import tensorflow as tf

from gfrnet_tf.data import synthetic_pose
from gfrnet_tf.errors import BadConfigError
from gfrnet_tf.ops import resample, warp_image

SIZE = 64
FACE = slice(12, 52)  # the central region a face crop occupies


def _smooth_image():
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    return np.stack(
        [
            0.5 + 0.3 * np.sin(xx / 9.0) * np.cos(yy / 11.0),
            0.5 + 0.3 * np.cos((xx + yy) / 13.0),
            0.4 + 0.2 * np.sin(yy / 7.0),
        ],
        -1,
    ).astype(np.float32)


def _landmarks():
    return np.random.RandomState(0).uniform(16, 48, (68, 2)).astype(np.float32)


def _settings(photometric=False, **changes):
    settings = dict(synthetic_pose.default_pose_settings(), photometric=photometric)
    settings.update(changes)
    return settings


def _synthesize(seed, **settings):
    return synthetic_pose.synthesize_guide(
        _smooth_image(), _landmarks(), tf.constant([5, seed], tf.int64), _settings(**settings)
    )


# grid 2: the flow is solved on 32x32 points and upsampled to 64x64; grid 4: on every pixel.
@pytest.mark.parametrize(
    "seed, elastic, grid", [(0, 0.02, 4), (1, 0.02, 4), (2, 0.06, 4), (3, 0.1, 2)]
)
def test_warping_the_guide_with_the_flow_gives_back_the_target(seed, elastic, grid):
    image = _smooth_image()
    guide, _, flow = _synthesize(seed, elastic_amplitude=elastic, elastic_grid=grid)
    assert np.abs(guide.numpy() - image)[FACE, FACE].mean() > 5 / 255  # a real warp
    restored = warp_image(guide[tf.newaxis], flow[tf.newaxis])[0].numpy()
    assert np.abs(restored - image)[FACE, FACE].mean() < 1 / 255


def test_inverse_undoes_forward_at_the_largest_allowed_elastic_amplitude():
    # 2 * 0.06 * 4 = 0.48: just inside the bound check_pose_settings accepts.
    settings = _settings(elastic_amplitude=0.06, elastic_grid=4)
    synthetic_pose.check_pose_settings(settings)
    warp = synthetic_pose.PoseWarp.sample(tf.constant([1, 2], tf.int64), SIZE, SIZE, settings)
    points = tf.constant(np.random.RandomState(1).uniform(8, 56, (500, 2)), tf.float32)
    back = warp.forward(warp.inverse(points)).numpy()
    np.testing.assert_allclose(back, points.numpy(), atol=2e-3)
    assert np.abs(warp.inverse(points).numpy() - points.numpy()).mean() > 1.0


@pytest.mark.parametrize("grid", [2, 4])
def test_guide_landmarks_follow_the_flow_and_the_image(grid):
    image, landmarks = _smooth_image(), _landmarks()
    guide, guide_landmarks, flow = _synthesize(3, elastic_amplitude=0.05, elastic_grid=grid)
    assert np.abs(guide_landmarks.numpy() - landmarks).mean() > 0.5  # the points moved
    flow_px = (flow.numpy() + 1.0) / 2.0 * (SIZE - 1)
    flow_at_landmarks = resample(flow_px[tf.newaxis], landmarks[tf.newaxis])[0].numpy()
    np.testing.assert_allclose(flow_at_landmarks, guide_landmarks.numpy(), atol=0.02)
    # What the guide shows at its landmarks is what the target shows at the originals.
    seen_in_guide = resample(guide[tf.newaxis], guide_landmarks[tf.newaxis])[0].numpy()
    seen_in_target = resample(image[tf.newaxis], landmarks[tf.newaxis])[0].numpy()
    assert np.abs(seen_in_guide - seen_in_target).max() < 2 / 255


def test_same_seed_is_bit_identical_other_seed_differs():
    first = _synthesize(4)
    again = _synthesize(4)
    other = _synthesize(5)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert np.abs(first[2].numpy() - other[2].numpy()).max() > 1e-3


def test_photometric_change_alters_colours_but_not_geometry():
    plain_guide, plain_points, plain_flow = _synthesize(6)
    lit_guide, lit_points, lit_flow = _synthesize(6, photometric=True)
    np.testing.assert_array_equal(plain_flow.numpy(), lit_flow.numpy())
    np.testing.assert_array_equal(plain_points.numpy(), lit_points.numpy())
    assert np.abs(lit_guide.numpy() - plain_guide.numpy()).mean() > 2 / 255
    assert 0.0 <= lit_guide.numpy().min() and lit_guide.numpy().max() <= 1.0


def test_zero_ranges_give_the_identity_warp():
    guide, points, flow = _synthesize(
        7, max_rotation_degrees=0.0, zoom=(1.0, 1.0), max_shift=0.0, elastic_amplitude=0.0
    )
    np.testing.assert_allclose(guide.numpy(), _smooth_image(), atol=1e-6)
    np.testing.assert_allclose(points.numpy(), _landmarks(), atol=1e-4)
    grid = np.stack(np.meshgrid(np.linspace(-1, 1, SIZE), np.linspace(-1, 1, SIZE)), -1)
    np.testing.assert_allclose(flow.numpy(), grid, atol=1e-5)


@pytest.mark.parametrize(
    "changes", [{"elastic_amplitude": 0.1}, {"zoom": (0.2, 1.0)}, {"max_rotation_degrees": 90.0}]
)
def test_settings_that_could_fold_or_lose_the_face_raise(changes):
    with pytest.raises(BadConfigError):
        synthetic_pose.check_pose_settings(_settings(**changes))


@pytest.mark.parametrize("grid, photometric", [(4, True), (2, False)])
def test_compiled_guide_matches_the_graph_computation(grid, photometric):
    settings = _settings(photometric=photometric, elastic_amplitude=0.05, elastic_grid=grid)
    warp_seed, light_seed = tf.unstack(tf.constant([[1, 2], [3, 4]], tf.int64))
    draws = synthetic_pose.draw_warp(warp_seed, SIZE, SIZE, settings)
    light = synthetic_pose.draw_light(light_seed, settings) if photometric else None
    args = (
        tf.constant(_smooth_image()),
        tf.constant(_landmarks()),
        draws,
        light,
        synthetic_pose._fixed_point_steps(settings),
        16 * grid,
    )
    compiled = synthetic_pose.render_guide_xla(*args)
    graph = tf.function(synthetic_pose.render_guide)(*args)
    # Only the order of float32 sums differs (XLA fuses): guide and flow to ~1e-6.
    for name, a, b, atol in zip(
        ("guide", "landmarks", "flow"), compiled, graph, (1e-5, 1e-4, 1e-5)
    ):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=atol, err_msg=name)
