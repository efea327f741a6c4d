"""GFRNet's loss terms (§3.3, Eqs. 5-10), one small pure function each.

Every function returns a *per-sample* loss `[B]` instead of a scalar: under
`tf.distribute` each replica sees only its slice of the global batch, and the correct
reduction is `sum(per_sample) / global_batch` (`tf.nn.compute_average_loss`), which
`GFRNet` applies once to the weighted total. Normalisations inside a sample are chosen so
that the §4.1 weights (l2 100, perceptual 0.001, adversarial 1 / 0.5, landmark 10, TV 1)
give terms of comparable size; each docstring says which one. Inputs are cast to float32,
so the losses stay exact when the networks compute in `mixed_float16`.
"""

from __future__ import annotations

import tensorflow as tf

from gfrnet_tf.ops import identity_grid, normalize_points, resample


def _float32(*tensors):
    return [tf.cast(t, tf.float32) for t in tensors]


def _mean_per_sample(values):
    """Mean over every axis except the batch axis: `[B, ...] -> [B]`."""
    return tf.reduce_mean(tf.reshape(values, [tf.shape(values)[0], -1]), axis=1)


def l2_loss(target, restored):
    """Eq. 6's `||I - I_hat||^2` as the mean squared error over pixels and channels.

    The paper's plain sum over a 256x256x3 image would be ~2e5 times larger and, with
    weight 100, drown every other term; the per-pixel mean (images in [-1, 1]) is what
    pix2pix-style implementations use with that weight.
    """
    target, restored = _float32(target, restored)
    return _mean_per_sample(tf.math.squared_difference(target, restored))


def perceptual_loss(features_fn, target, restored):
    """Eq. 5: `||psi(I_hat) - psi(I)||^2 / (C H W)` on a frozen feature network.

    `features_fn` maps `[-1, 1]` RGB images to feature maps `[B, h, w, C]` (here VGG-Face
    conv4, `gfrnet_tf.models.vgg_face.VGGFace`); the division by `C H W` is the mean.
    The target's features are a constant: no gradient flows into them.
    """
    target_features = tf.stop_gradient(features_fn(target))
    return _mean_per_sample(tf.math.squared_difference(*_float32(features_fn(restored), target_features)))


def _bce_per_sample(label, logits):
    """Binary cross-entropy of every patch logit against a constant label, averaged per sample."""
    (logits,) = _float32(logits)
    labels = tf.fill(tf.shape(logits), tf.cast(label, tf.float32))
    return _mean_per_sample(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))


def discriminator_loss(real_logits, fake_logits, real_label=0.9):
    """The discriminator's side of Eq. 7 with the smoothed labels 0 / 0.9 of §3.3.

    Binary cross-entropy from logits, averaged over the PatchGAN's patches; real and fake
    terms are summed (not halved), so the loss is exactly the negated Eq. 7 objective.
    """
    return _bce_per_sample(real_label, real_logits) + _bce_per_sample(0.0, fake_logits)


def generator_adversarial_loss(fake_logits, real_label=0.9):
    """The generator's side of Eq. 7: push the discriminator's patches towards `real_label`.

    The non-saturating form (`-log D(G)` rather than `log(1 - D(G))`), as in pix2pix; the
    target label is the same smoothed 0.9 the discriminator is trained with.
    """
    return _bce_per_sample(real_label, fake_logits)


def landmark_loss(phi, landmarks_px, guide_landmarks_px):
    """Eq. 9: squared distance between `Phi` at the target's landmarks and the guide's.

    `phi [B, H, W, 2]` is sampled bilinearly (the differentiable `resample`, so only the
    4 grid neighbours of each landmark receive gradient) at `landmarks_px [B, N, 2]`, pixel
    coordinates of Phi's own grid (the target image). The guide's landmarks
    `guide_landmarks_px [B, N, 2]` are normalised to [-1, 1] like Phi (guide and target
    share one size throughout the project). As in Eq. 9 the squared errors are *summed*
    over the N points and both coordinates (not averaged), so the per-sample value is
    comparable with the paper's weight 10.
    """
    phi, landmarks_px, guide_landmarks_px = _float32(phi, landmarks_px, guide_landmarks_px)
    height, width = tf.shape(phi)[1], tf.shape(phi)[2]
    sampled = resample(phi, landmarks_px)
    expected = normalize_points(guide_landmarks_px, height, width)
    return tf.reduce_sum(tf.math.squared_difference(sampled, expected), axis=[1, 2])


def tv_loss(phi):
    """Eq. 10 on the displacement `Phi - identity`, as *mean* squared finite differences.

    The identity grid has a constant gradient, so subtracting it makes a pure translation
    cost exactly zero (Eq. 10 on Phi itself would penalise the identity flow). Each of the
    two directions is the mean over its `(H-1) W` / `H (W-1)` differences and both flow
    channels; summing over pixels instead would scale with the image size.
    """
    (phi,) = _float32(phi)
    displacement = phi - identity_grid(tf.shape(phi)[1], tf.shape(phi)[2])
    along_y = displacement[:, 1:] - displacement[:, :-1]
    along_x = displacement[:, :, 1:] - displacement[:, :, :-1]
    return _mean_per_sample(tf.square(along_x)) + _mean_per_sample(tf.square(along_y))
