"""The flow symmetry term (the PyTorch reimplementation's `BilinearFullSymLoss`) and the
landmark symmetry axis it steps along: a numpy loop reference, flows with a known value,
the axis of rotated faces, gradients, and the term in the model's train step."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from gfrnet_tf import losses
from gfrnet_tf.apps.common import main_wrapper
from gfrnet_tf.data.landmarks import flip_landmarks
from gfrnet_tf.errors import BadConfigError
from gfrnet_tf.models.gfrnet import DEFAULT_SYMMETRY_SHIFT, build_gfrnet
from gfrnet_tf.ops import symmetry_axis
from gfrnet_tf.sample import load_sample
from support import TINY

# 1-based iBUG-300W points the axis is estimated from, written out by hand: the midline
# (chin, nose bridge, under the nose, lips) and the mirror pairs of brows, nostrils,
# eyes and lips.
MIDLINE = (9, 28, 29, 30, 31, 34, 52, 58, 63, 67)
PAIRS = (
    (18, 27),
    (19, 26),
    (20, 25),
    (21, 24),
    (22, 23),
    (32, 36),
    (33, 35),
    (37, 46),
    (38, 45),
    (39, 44),
    (40, 43),
    (41, 48),
    (42, 47),
    (49, 55),
    (50, 54),
    (51, 53),
    (56, 60),
    (57, 59),
    (61, 65),
    (62, 64),
    (66, 68),
)
SIZE = 32


def _symmetric_face(rng, tilt_degrees=0.0, centre=(16.0, 16.0), half_width=9.0):
    """68 points mirror-symmetric about a vertical line through `centre`, then rotated by
    `tilt_degrees` about it; the jaw points are random (the axis must not use them)."""
    points = np.zeros((68, 2))
    for index in MIDLINE:
        points[index - 1] = (0.0, rng.uniform(-half_width, half_width))
    for left, right in PAIRS:
        x, y = rng.uniform(0.5, half_width), rng.uniform(-half_width, half_width)
        points[left - 1], points[right - 1] = (-x, y), (x, y)
    for index in (*range(1, 9), *range(10, 18)):
        points[index - 1] = rng.uniform(-half_width, half_width, 2)
    return (points @ _rotation(tilt_degrees).T + centre).astype(np.float32)


def _rotation(degrees):
    angle = np.deg2rad(degrees)
    return np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])


def _normalise(xy, height, width):
    return 2.0 * np.asarray(xy) / np.array([width - 1, height - 1]) - 1.0


def _affine_flow(matrix, centre, height=SIZE, width=SIZE, offset=(0.0, 0.0)):
    """Phi(p) = normalise(M (p - c) + c + offset), pixel p of the target."""
    xs, ys = np.meshgrid(np.arange(width), np.arange(height))
    pixels = np.stack([xs, ys], -1) - centre
    return _normalise(pixels @ np.asarray(matrix).T + centre + offset, height, width)[None].astype(
        np.float32
    )


def _axis_reference(landmarks):
    """The major eigenvector of the midpoints' covariance (numpy `eigh`, not the closed form)."""
    midpoints = [landmarks[i - 1] for i in MIDLINE]
    midpoints += [(landmarks[a - 1] + landmarks[b - 1]) / 2 for a, b in PAIRS]
    _, vectors = np.linalg.eigh(np.cov(np.array(midpoints, np.float64).T))
    return vectors[:, -1]


def _loss_reference(phi, target_landmarks, guide_landmarks, shift):
    """Per-sample loss by explicit loops, bilinear reads by `scipy.ndimage.map_coordinates`."""
    batch, height, width, _ = phi.shape
    values = []
    for b in range(batch):
        half_step = 0.5 * shift * max(height, width) * _axis_reference(target_landmarks[b])
        guide = _axis_reference(guide_landmarks[b]) / np.array([width - 1, height - 1])
        normal = np.array([-guide[1], guide[0]]) / np.linalg.norm(guide)
        total, count = 0.0, 0
        for y in range(height):
            for x in range(width):
                ahead, behind = np.array([x, y]) + half_step, np.array([x, y]) - half_step
                if not all(
                    0 <= p[0] <= width - 1 and 0 <= p[1] <= height - 1 for p in (ahead, behind)
                ):
                    continue
                change = [
                    ndimage.map_coordinates(
                        phi[b, ..., c].astype(np.float64), [[ahead[1]], [ahead[0]]], order=1
                    )[0]
                    - ndimage.map_coordinates(
                        phi[b, ..., c].astype(np.float64), [[behind[1]], [behind[0]]], order=1
                    )[0]
                    for c in range(2)
                ]
                total += float(np.dot(change, normal)) ** 2
                count += 1
        values.append(total / count)
    return np.array(values)


def _loss(phi, target_landmarks, guide_landmarks, shift=DEFAULT_SYMMETRY_SHIFT):
    return losses.flow_symmetry_loss(
        phi, symmetry_axis(target_landmarks), symmetry_axis(guide_landmarks), shift
    ).numpy()


def test_axis_of_a_rotated_face_is_the_rotated_vertical_and_matches_eigh():
    rng = np.random.default_rng(0)
    for tilt in (0.0, 17.0, -38.0, 89.0, 90.0, 135.0):
        face = _symmetric_face(rng, tilt)
        axis = symmetry_axis(face).numpy()
        expected = _rotation(tilt) @ [0.0, 1.0]
        assert abs(np.cross(axis, expected)) < 1e-5, tilt  # parallel, whatever the sign
        assert abs(np.cross(axis, _axis_reference(face))) < 1e-5, tilt
    # The bundled photo's face is upright within a few degrees; flipped, its axis mirrors.
    _, landmarks = load_sample()
    axis = symmetry_axis(landmarks.astype(np.float32)).numpy()
    assert abs(axis[1]) > np.cos(np.deg2rad(5))
    flipped = symmetry_axis(flip_landmarks(landmarks.astype(np.float32), 256)).numpy()
    assert abs(np.cross(flipped, axis * [-1.0, 1.0])) < 1e-5


def test_loss_matches_a_numpy_loop_reference_on_a_random_flow():
    rng = np.random.default_rng(1)
    height, width = 20, 26  # not square: the step and the normal still follow the pixels
    phi = rng.uniform(-1, 1, (2, height, width, 2)).astype(np.float32)
    target = np.stack(
        [
            _symmetric_face(rng, 23.0, (13.0, 10.0), 6.0),
            _symmetric_face(rng, -61.0, (12.0, 9.0), 6.0),
        ]
    )
    guide = np.stack(
        [
            _symmetric_face(rng, -9.0, (13.0, 10.0), 6.0),
            _symmetric_face(rng, 101.0, (12.0, 9.0), 6.0),
        ]
    )
    for shift in (DEFAULT_SYMMETRY_SHIFT, 0.29):  # ~1 px (sub-pixel reads) and ~7.5 px
        np.testing.assert_allclose(
            _loss(phi, target, guide, shift),
            _loss_reference(phi, target, guide, shift),
            rtol=1e-5,
            atol=1e-7,
        )


def test_the_sign_of_either_axis_does_not_change_the_loss():
    rng = np.random.default_rng(2)
    phi = tf.constant(rng.uniform(-1, 1, (2, SIZE, SIZE, 2)).astype(np.float32))
    target_axis = symmetry_axis(np.stack([_symmetric_face(rng, 30.0), _symmetric_face(rng, -75.0)]))
    guide_axis = symmetry_axis(np.stack([_symmetric_face(rng, 5.0), _symmetric_face(rng, 160.0)]))
    expected = losses.flow_symmetry_loss(phi, target_axis, guide_axis, 0.2).numpy()
    assert np.all(expected > 0)
    for signs in ((-1, 1), (1, -1), (-1, -1)):
        flipped = losses.flow_symmetry_loss(phi, signs[0] * target_axis, signs[1] * guide_axis, 0.2)
        np.testing.assert_array_equal(flipped.numpy(), expected)


def test_identity_translation_and_the_rotation_between_the_axes_cost_nothing():
    rng = np.random.default_rng(3)
    centre = np.array([15.0, 17.0])
    face = _symmetric_face(rng, 12.0, centre)
    identity = _affine_flow(np.eye(2), centre)
    np.testing.assert_allclose(_loss(identity, face[None], face[None]), 0.0, atol=1e-10)
    shifted = _affine_flow(np.eye(2), centre, offset=(2.5, -1.25))
    np.testing.assert_allclose(
        _loss(shifted, face[None], face[None] + [2.5, -1.25]), 0.0, atol=1e-10
    )
    # The guide is the target's face turned by 40 degrees; Phi turns every pixel with it.
    rotation = _rotation(40.0)
    guide = ((face - centre) @ rotation.T + centre).astype(np.float32)
    rotated = _affine_flow(rotation, centre)
    np.testing.assert_allclose(_loss(rotated, face[None], guide[None]), 0.0, atol=1e-10)
    # The same rotation against an unturned guide costs (2 C / (W - 1))^2 sin^2(40 deg).
    step = DEFAULT_SYMMETRY_SHIFT * SIZE
    np.testing.assert_allclose(
        _loss(rotated, face[None], face[None]),
        (2 * step / (SIZE - 1) * np.sin(np.deg2rad(40.0))) ** 2,
        rtol=1e-4,
    )


def test_a_shear_along_x_costs_its_analytic_value():
    rng = np.random.default_rng(4)
    centre = np.array([16.0, 16.0])
    face = _symmetric_face(rng, 0.0, centre)  # axis vertical in target and guide
    for k in (0.1, -0.3):
        sheared = _affine_flow([[1.0, k], [0.0, 1.0]], centre)  # x += k (y - c_y)
        # A step of C px down the axis moves Phi by k C px across it: 2 k C / (W - 1) normalised.
        expected = (2 * k * DEFAULT_SYMMETRY_SHIFT * SIZE / (SIZE - 1)) ** 2
        np.testing.assert_allclose(_loss(sheared, face[None], face[None]), expected, rtol=1e-4)
    # A shear along the axis (y += k x) keeps the axis's steps on the axis: free.
    along = _affine_flow([[1.0, 0.0], [0.3, 1.0]], centre)
    np.testing.assert_allclose(_loss(along, face[None], face[None]), 0.0, atol=1e-10)


def test_gradient_is_finite_nonzero_and_across_the_guide_axis():
    rng = np.random.default_rng(5)
    phi = tf.Variable(rng.uniform(-1, 1, (1, SIZE, SIZE, 2)).astype(np.float32))
    face = _symmetric_face(rng, 0.0)  # vertical axis: the reads move along y only
    with tf.GradientTape() as tape:
        loss = losses.flow_symmetry_loss(
            phi, symmetry_axis(face[None]), symmetry_axis(face[None]), 0.25
        )
    gradient = tape.gradient(loss, phi).numpy()
    assert np.all(np.isfinite(gradient)) and np.abs(gradient[..., 0]).min() > 0
    # Only Phi's x (across the vertical guide axis) counts; the closed-form axis is
    # vertical to float32 rounding (cos(pi / 2) ~ -4e-8), so y gets next to nothing.
    assert np.abs(gradient[..., 1]).max() < 1e-6 * np.abs(gradient[..., 0]).max()


def _batch():
    rng = np.random.default_rng(6)
    target = rng.uniform(-1, 1, (2, SIZE, SIZE, 3)).astype(np.float32)
    landmarks = np.stack([_symmetric_face(rng, 8.0), _symmetric_face(rng, -5.0)])
    inputs = {"degraded": target, "guide": np.roll(target, 2, axis=2)}
    return inputs, {
        "target": target,
        "landmarks": landmarks,
        "guide_landmarks": landmarks + [2.0, 0.0],
    }


@pytest.mark.parametrize("weight", [0.0, 3.0])
def test_the_term_trains_in_both_phases_only_when_weighted(weight):
    model = build_gfrnet({**TINY, "loss_weights": {"flow_symmetry": weight}})
    model.compile(keras.optimizers.Adam(2e-4, beta_1=0.5), keras.optimizers.Adam(2e-4, beta_1=0.5))
    model.build_all((SIZE, SIZE))
    for phase in ("warp", "joint"):
        model.phase = phase
        logs = {name: float(value) for name, value in model.train_step(_batch()).items()}
        assert ("flow_symmetry" in logs) == bool(weight), phase
        assert ("flow_symmetry" in model.reported_terms()) == bool(weight)
        if phase == "warp":
            symmetry = weight * logs.get("flow_symmetry", 0.0)
            assert logs["g_total"] == pytest.approx(
                10 * logs["landmark"] + logs["tv"] + symmetry, rel=1e-5
            )
            assert not weight or logs["flow_symmetry"] > 0
    assert (
        build_gfrnet({**TINY, "variant": "no_warp", "loss_weights": {"flow_symmetry": weight}})
        .reported_terms()
        .count("flow_symmetry")
        == 0
    )  # no flow, no flow loss


@pytest.mark.parametrize(
    "key, value",
    [
        ("loss_weights", {"flow_symmetry": -1.0}),
        ("loss_weights", {"flow_symmetry": float("nan")}),
        ("loss_weights", {"flow_symmetry": "1"}),
        ("symmetry_shift", 0.0),
        ("symmetry_shift", 0.75),
        ("symmetry_shift", True),
    ],
)
def test_bad_symmetry_settings_fail_by_name_in_one_line(key, value, capsys):
    source = "model.loss_weights.flow_symmetry" if key == "loss_weights" else "model.symmetry_shift"
    with pytest.raises(BadConfigError, match=source.replace(".", r"\.")):
        build_gfrnet({**TINY, key: value})

    def main(argv):
        build_gfrnet({**TINY, key: value})

    with pytest.raises(SystemExit):
        main_wrapper(main)(["gfrnet-train"])
    error = capsys.readouterr().err
    assert error.startswith(f"error: {source}: ") and error.count("\n") == 1
