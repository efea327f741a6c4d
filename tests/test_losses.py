"""Loss terms against numpy references, hand examples and invariants."""

import numpy as np
import pytest
import tensorflow as tf

from gfrnet_tf import losses
from gfrnet_tf.errors import BadConfigError


def _normalize(xy, height, width):
    return 2.0 * xy / np.array([width - 1, height - 1], np.float32) - 1.0


def _mesh(height, width):
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return _normalize(np.stack([xs, ys], axis=-1), height, width)


def _bce(label, logits):
    return np.maximum(logits, 0) - logits * label + np.log1p(np.exp(-np.abs(logits)))


def test_l2_loss_is_per_sample_mean_squared_error():
    target = np.random.uniform(-1, 1, (2, 5, 4, 3)).astype(np.float32)
    restored = np.random.uniform(-1, 1, (2, 5, 4, 3)).astype(np.float32)
    expected = ((target - restored) ** 2).reshape(2, -1).mean(axis=1)
    np.testing.assert_allclose(losses.l2_loss(target, restored), expected, rtol=1e-6)


def test_perceptual_loss_matches_numpy_and_only_restored_gets_gradient():
    kernel = np.random.normal(size=(3, 3, 3, 4)).astype(np.float32)

    def features(images):
        return tf.nn.relu(tf.nn.conv2d(images, kernel, 1, "VALID"))

    target = tf.constant(np.random.uniform(-1, 1, (2, 6, 6, 3)).astype(np.float32))
    restored = tf.constant(np.random.uniform(-1, 1, (2, 6, 6, 3)).astype(np.float32))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([target, restored])
        loss = losses.perceptual_loss(features, target, restored)
    diff = features(restored).numpy() - features(target).numpy()  # [2, 4, 4, 4]: C H W = 64
    np.testing.assert_allclose(loss, (diff**2).sum(axis=(1, 2, 3)) / 64.0, rtol=1e-5)
    assert tape.gradient(loss, target) is None
    assert np.abs(tape.gradient(loss, restored).numpy()).sum() > 0


def test_adversarial_losses_match_numpy_bce_with_smoothed_labels():
    real = np.random.normal(size=(2, 3, 3, 1)).astype(np.float32)
    fake = np.random.normal(size=(2, 3, 3, 1)).astype(np.float32)
    expected_d = _bce(0.9, real).reshape(2, -1).mean(1) + _bce(0.0, fake).reshape(2, -1).mean(1)
    np.testing.assert_allclose(losses.discriminator_loss(real, fake), expected_d, rtol=1e-5)
    np.testing.assert_allclose(
        losses.generator_adversarial_loss(fake), _bce(0.9, fake).reshape(2, -1).mean(1), rtol=1e-5
    )


def test_discriminator_loss_is_minimal_at_the_smoothed_labels():
    # With label 0.9 the real term is minimal where sigmoid(logit) = 0.9, not at +inf.
    best_real = np.log(0.9 / 0.1)
    logits = tf.Variable(np.full((1, 2, 2, 1), best_real, np.float32))
    with tf.GradientTape() as tape:
        loss = losses.discriminator_loss(logits, tf.fill([1, 2, 2, 1], -30.0))
    np.testing.assert_allclose(tape.gradient(loss, logits), 0.0, atol=1e-6)
    for shift in (-1.0, 1.0):
        worse = losses.discriminator_loss(logits + shift, tf.fill([1, 2, 2, 1], -30.0))
        assert worse[0] > loss[0]
    # The fake term only keeps falling as fake logits go down.
    fakes = [tf.fill([1, 2, 2, 1], v) for v in (2.0, 0.0, -2.0)]
    fake_losses = [losses.discriminator_loss(logits, fake)[0] for fake in fakes]
    assert fake_losses[0] > fake_losses[1] > fake_losses[2]


def _affine_case(height=12, width=16):
    """An affine flow Phi(p) = A p + t (normalised) and landmarks it maps exactly."""
    a = np.array([[0.9, 0.1], [-0.15, 1.05]], np.float32)
    t = np.array([0.05, -0.1], np.float32)
    phi = (_mesh(height, width) @ a.T + t)[np.newaxis]
    landmarks = np.random.uniform([0, 0], [width - 1, height - 1], (1, 68, 2)).astype(np.float32)
    guide_n = _normalize(landmarks, height, width) @ a.T + t
    guide = (guide_n + 1.0) * 0.5 * np.array([width - 1, height - 1], np.float32)
    return phi, landmarks, guide


def test_landmark_loss_is_zero_for_the_exact_affine_flow():
    phi, landmarks, guide = _affine_case()
    np.testing.assert_allclose(losses.landmark_loss(phi, landmarks, guide), [0.0], atol=1e-9)
    # Moving the guide's landmarks by one pixel in x adds (2 / (W - 1))^2 per point.
    shifted = guide + np.array([1.0, 0.0], np.float32)
    np.testing.assert_allclose(
        losses.landmark_loss(phi, landmarks, shifted), [68 * (2.0 / 15) ** 2], rtol=1e-4
    )


def test_landmark_loss_matches_numpy_at_pixel_and_half_pixel_positions():
    phi = np.random.uniform(-1, 1, (2, 6, 7, 2)).astype(np.float32)
    landmarks = np.array([[[2.0, 3.0], [4.5, 1.0]], [[0.0, 5.0], [6.0, 2.5]]], np.float32)
    guide = np.random.uniform(0, 5, (2, 2, 2)).astype(np.float32)
    sampled = np.stack(
        [
            np.stack([phi[0, 3, 2], 0.5 * (phi[0, 1, 4] + phi[0, 1, 5])]),
            np.stack([phi[1, 5, 0], 0.5 * (phi[1, 2, 6] + phi[1, 3, 6])]),
        ]
    )
    expected = ((sampled - _normalize(guide, 6, 7)) ** 2).sum(axis=(1, 2))
    np.testing.assert_allclose(losses.landmark_loss(phi, landmarks, guide), expected, rtol=1e-5)


def test_landmark_loss_gradient_touches_only_the_four_neighbours():
    phi = tf.Variable(np.random.uniform(-1, 1, (1, 10, 10, 2)).astype(np.float32))
    landmarks = np.array([[[2.3, 4.6], [7.5, 1.2]]], np.float32)
    with tf.GradientTape() as tape:
        loss = losses.landmark_loss(phi, landmarks, np.zeros((1, 2, 2), np.float32))
    touched = np.argwhere(np.abs(tape.gradient(loss, phi).numpy()[0]).sum(-1) > 0)
    expected = {(4, 2), (4, 3), (5, 2), (5, 3), (1, 7), (1, 8), (2, 7), (2, 8)}
    assert {tuple(p) for p in touched} == expected


def test_tv_loss_of_a_translation_is_zero_and_matches_numpy_otherwise():
    translated = _mesh(8, 9)[np.newaxis] + np.array([0.3, -0.2], np.float32)
    np.testing.assert_allclose(losses.tv_loss(translated), [0.0], atol=1e-10)

    phi = np.random.uniform(-1, 1, (2, 8, 9, 2)).astype(np.float32)
    d = phi - _mesh(8, 9)
    along_x, along_y = np.diff(d, axis=2) ** 2, np.diff(d, axis=1) ** 2
    expected = along_x.reshape(2, -1).mean(1) + along_y.reshape(2, -1).mean(1)
    np.testing.assert_allclose(losses.tv_loss(phi), expected, rtol=1e-5)


def test_tv_loss_gradient_step_smooths_the_flow():
    phi = tf.Variable(np.random.uniform(-1, 1, (1, 6, 6, 2)).astype(np.float32))
    with tf.GradientTape() as tape:
        before = losses.tv_loss(phi)
    phi.assign_sub(0.1 * tape.gradient(before, phi))
    assert losses.tv_loss(phi)[0] < before[0]


# ------------------------------------------------------- the three readings (docs/FIDELITY.md)
def test_l2_reductions_are_the_squared_norm_or_the_mean():
    target = np.random.uniform(-1, 1, (2, 5, 4, 3)).astype(np.float32)
    restored = np.random.uniform(-1, 1, (2, 5, 4, 3)).astype(np.float32)
    squared = ((target - restored) ** 2).reshape(2, -1)
    np.testing.assert_allclose(losses.l2_loss(target, restored, "paper"), squared.sum(1), rtol=1e-6)
    for reduction in ("official", "project"):
        np.testing.assert_allclose(
            losses.l2_loss(target, restored, reduction), squared.mean(1), rtol=1e-6
        )


def test_official_landmark_loss_is_the_masked_map_mse_of_the_official_code():
    """The official `MSELoss(grid * mask, target * mask)` with the mask built as its data
    loader builds it: the floor/ceil pixels of each landmark (one pixel, two or four),
    the mean taken over the whole 2 x H x W map."""
    height, width = 9, 11
    phi = np.random.uniform(-1, 1, (2, height, width, 2)).astype(np.float32)
    landmarks = np.array(
        [
            [[2.3, 4.6], [7.5, 1.2], [5.0, 7.0]],  # 4, 4 and 1 pixel(s)
            [[3.7, 2.0], [8.1, 7.9], [1.0, 5.5]],
        ],
        np.float32,
    )  # 2, 4, 2
    guide = np.random.uniform(0, 8, (2, 3, 2)).astype(np.float32)
    expected = []
    for b in range(2):
        mask = np.zeros((height, width, 2), np.float32)
        wanted = np.zeros((height, width, 2), np.float32)
        for (x, y), g in zip(landmarks[b], _normalize(guide[b], height, width)):
            for row in (int(np.floor(y)), int(np.ceil(y))):
                for col in (int(np.floor(x)), int(np.ceil(x))):
                    mask[row, col], wanted[row, col] = 1.0, g
        expected.append(((phi[b] * mask - wanted * mask) ** 2).mean())
    np.testing.assert_allclose(
        losses.landmark_loss(phi, landmarks, guide, "official"), expected, rtol=1e-5
    )


def test_paper_and_project_landmark_loss_are_the_eq_9_sum():
    phi, landmarks, guide = _affine_case()
    shifted = guide + np.array([1.0, 0.0], np.float32)
    for reduction in ("paper", "project"):
        np.testing.assert_allclose(
            losses.landmark_loss(phi, landmarks, shifted, reduction),
            [68 * (2.0 / 15) ** 2],
            rtol=1e-4,
        )


def test_tv_reductions_and_targets_match_numpy():
    phi = np.random.uniform(-1, 1, (2, 8, 9, 2)).astype(np.float32)
    for target, field in (("flow", phi), ("displacement", phi - _mesh(8, 9))):
        along_x = (np.diff(field, axis=2) ** 2).reshape(2, -1)
        along_y = (np.diff(field, axis=1) ** 2).reshape(2, -1)
        np.testing.assert_allclose(
            losses.tv_loss(phi, "paper", target), along_x.sum(1) + along_y.sum(1), rtol=1e-5
        )
        for reduction in ("official", "project"):
            np.testing.assert_allclose(
                losses.tv_loss(phi, reduction, target), along_x.mean(1) + along_y.mean(1), rtol=1e-5
            )


def test_tv_on_the_flow_charges_the_identity_warp_and_on_the_displacement_does_not():
    identity = _mesh(8, 9)[np.newaxis]
    np.testing.assert_allclose(
        losses.tv_loss(identity, "official", "displacement"), [0.0], atol=1e-10
    )
    # Eq. 10 on Phi: the mesh's slope 2 / (W - 1) along x and 2 / (H - 1) along y, each
    # present in one of the two channels (mean over both channels halves it).
    expected = 0.5 * ((2 / 8) ** 2 + (2 / 7) ** 2)
    np.testing.assert_allclose(losses.tv_loss(identity, "official", "flow"), [expected], rtol=1e-5)


def test_halved_discriminator_loss_is_half_the_eq_7_sum():
    real = np.random.normal(size=(2, 3, 3, 1)).astype(np.float32)
    fake = np.random.normal(size=(2, 3, 3, 1)).astype(np.float32)
    np.testing.assert_allclose(
        losses.discriminator_loss(real, fake, halved=True),
        0.5 * losses.discriminator_loss(real, fake).numpy(),
        rtol=1e-6,
    )


def test_minimax_generator_loss_is_eq_7s_log_one_minus_d_with_its_vanishing_gradient():
    fake = tf.constant(np.random.normal(size=(2, 3, 3, 1)).astype(np.float32) * 3.0)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(fake)
        minimax = losses.generator_adversarial_loss(fake, form="minimax")
        non_saturating = losses.generator_adversarial_loss(fake)
    d_of_fake = 1.0 / (1.0 + np.exp(-fake.numpy()))
    np.testing.assert_allclose(
        minimax, np.log(1.0 - d_of_fake).reshape(2, -1).mean(1), rtol=1e-5, atol=1e-6
    )
    # d/dlogit per patch: -D (minimax; vanishes where D calls the result fake) and D - 0.9
    # (non-saturating; largest there). 9 patches per sample.
    np.testing.assert_allclose(tape.gradient(minimax, fake), -d_of_fake / 9.0, rtol=1e-4)
    np.testing.assert_allclose(
        tape.gradient(non_saturating, fake), (d_of_fake - 0.9) / 9.0, rtol=1e-4, atol=1e-7
    )
    with pytest.raises(BadConfigError, match="generator_loss"):
        losses.generator_adversarial_loss(fake, form="wasserstein")


def test_unknown_reduction_and_tv_target_fail_by_name():
    with pytest.raises(BadConfigError, match="loss_reduction"):
        losses.l2_loss(np.zeros((1, 2, 2, 3)), np.zeros((1, 2, 2, 3)), "sum")
    with pytest.raises(BadConfigError, match="tv_target"):
        losses.tv_loss(np.zeros((1, 2, 2, 2)), "project", "phi")
