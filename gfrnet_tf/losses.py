"""GFRNet's loss terms (§3.3, Eqs. 5-10), one small pure function each.

Every function returns a *per-sample* loss `[B]` instead of a scalar: under
`tf.distribute` each replica sees only its slice of the global batch, and the correct
reduction is `sum(per_sample) / global_batch` (`tf.nn.compute_average_loss`), which
`GFRNet` applies once to the weighted total. Inputs are cast to float32, so the losses
stay exact when the networks compute in `mixed_float16`.

How a term is reduced *inside* a sample decides how the §4.2 weights (l2 100,
perceptual 0.001, adversarial 1 / 0.5, landmark 10, TV 1) balance it against the others.
Three readings exist (`LOSS_REDUCTIONS`, `config.model.loss_reduction`; docs/FIDELITY.md):

| term     | "paper" (the formulas)       | "official" (GFRNet_WarpNet ff10f06)  | "project"     |
|----------|------------------------------|--------------------------------------|---------------|
| l2       | Eq. 6 `||I - I_hat||^2`: sum | mean: the project's (code has none)  | mean          |
| landmark | Eq. 9: sum over the points   | `MSELoss` of the masked 2xHxW map    | Eq. 9's sum   |
|          |                              | (models/facefh_model.py:49, 89)      |               |
| tv       | Eq. 10 squared norms: sums   | mean per direction, summed           | as "official" |
|          |                              | (models/networks.py:194-206)         |               |

The official code trains WarpNet alone: it has no image l2 term. The per-pixel mean with
weight 100 is the project's reading after pix2pix, whose L1 term is such a mean with
weight 100; the PyTorch reimplementation instead sums the squared error over image and
batch, times 0.1, on [0, 1] images (sonack/GFRNet_pytorch_new
trains/train_full_part_local_GAN_cond_SP_LR.py:144, 483; opts.py:57).

Perceptual (Eq. 5 divides by `C H W`) and adversarial (expectations) terms are means in
every reading, and so is the flow symmetry term (not in the paper; the PyTorch
reimplementation's mean).
"""

from __future__ import annotations

import tensorflow as tf

from gfrnet_tf.errors import BadConfigError
from gfrnet_tf.ops import identity_grid, normalize_points, resample

LOSS_REDUCTIONS = ("paper", "official", "project")
TV_TARGETS = ("flow", "displacement")
GENERATOR_LOSSES = ("non_saturating", "minimax")


def check_reduction(reduction):
    """Raise `BadConfigError` unless `reduction` is one of `LOSS_REDUCTIONS`."""
    if reduction not in LOSS_REDUCTIONS:
        raise BadConfigError(
            "model.loss_reduction", f"must be one of {LOSS_REDUCTIONS}, got {reduction!r}"
        )


def _float32(*tensors):
    return [tf.cast(t, tf.float32) for t in tensors]


def _mean_per_sample(values):
    """Mean over every axis except the batch axis: `[B, ...] -> [B]`."""
    return tf.reduce_mean(tf.reshape(values, [tf.shape(values)[0], -1]), axis=1)


def _sum_per_sample(values):
    """Sum over every axis except the batch axis: `[B, ...] -> [B]`."""
    return tf.reduce_sum(tf.reshape(values, [tf.shape(values)[0], -1]), axis=1)


def l2_loss(target, restored, reduction="project"):
    """Eq. 6's `||I - I_hat||^2`: the squared norm ("paper") or the per-pixel mean.

    The paper's plain sum over a 256x256x3 image is ~2e5 times the mean and, with weight
    100, dwarfs every other term; the mean over pixels and channels ("official",
    "project") is the project's reading after pix2pix's mean L1 with weight 100 (module
    docstring). Both read the images in the networks' range (`GFRNet.image_range`): in
    [0, 1] the value is a quarter of the value in [-1, 1].
    """
    check_reduction(reduction)
    target, restored = _float32(target, restored)
    squared = tf.math.squared_difference(target, restored)
    return _sum_per_sample(squared) if reduction == "paper" else _mean_per_sample(squared)


def perceptual_loss(features_fn, target, restored):
    """Eq. 5: `||psi(I_hat) - psi(I)||^2 / (C H W)` on a frozen feature network.

    `features_fn` maps `[-1, 1]` RGB images to feature maps `[B, h, w, C]` (here VGG-Face
    conv4, `gfrnet_tf.models.vgg_face.VGGFace`); the division by `C H W` is the mean.
    The target's features are a constant: no gradient flows into them.
    """
    target_features = tf.stop_gradient(features_fn(target))
    return _mean_per_sample(
        tf.math.squared_difference(*_float32(features_fn(restored), target_features))
    )


def _bce_per_sample(label, logits):
    """Binary cross-entropy of every patch logit against a constant label, averaged per sample."""
    (logits,) = _float32(logits)
    labels = tf.fill(tf.shape(logits), tf.cast(label, tf.float32))
    return _mean_per_sample(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))


def discriminator_loss(real_logits, fake_logits, real_label=0.9, halved=False):
    """The discriminator's side of Eq. 7 with the smoothed labels 0 / 0.9 of §3.3.

    Binary cross-entropy from logits, averaged over the PatchGAN's patches. Real and fake
    terms are summed, exactly the negated Eq. 7 objective, as Lua pix2pix back-propagates
    them; `halved=True` takes their mean instead, as the PyTorch port of pix2pix does (it
    slows the discriminator relative to the generator; docs/FIDELITY.md has the lines).
    """
    loss = _bce_per_sample(real_label, real_logits) + _bce_per_sample(0.0, fake_logits)
    return 0.5 * loss if halved else loss


def check_generator_loss(form):
    """Raise `BadConfigError` unless `form` is one of `GENERATOR_LOSSES`."""
    if form not in GENERATOR_LOSSES:
        raise BadConfigError(
            "model.generator_loss", f"must be one of {GENERATOR_LOSSES}, got {form!r}"
        )


def generator_adversarial_loss(fake_logits, real_label=0.9, form="non_saturating"):
    """The generator's side of Eq. 7, averaged over the discriminator's patches.

    "non_saturating" (pix2pix's; not what Eq. 7 writes): minimise `-log D(G)`, the
    cross-entropy of the fake patches against the same smoothed `real_label` the
    discriminator is trained with. "minimax": Eq. 7 as written, the generator minimises
    `log(1 - D(G))`, i.e. the negated cross-entropy against the fake label 0; its gradient
    vanishes where the discriminator is sure the result is fake, and it is unbounded below.
    """
    check_generator_loss(form)
    if form == "minimax":
        return -_bce_per_sample(0.0, fake_logits)
    return _bce_per_sample(real_label, fake_logits)


def landmark_loss(phi, landmarks_px, guide_landmarks_px, reduction="project"):
    """Eq. 9: squared distance between `Phi` at the target's landmarks and the guide's.

    `landmarks_px [B, N, 2]` are pixel coordinates of Phi's own grid (the target image);
    the guide's landmarks `guide_landmarks_px [B, N, 2]` are normalised to [-1, 1] like
    Phi (guide and target share one size throughout the project).

    "paper", "project": `phi [B, H, W, 2]` is sampled bilinearly at each landmark (the
    differentiable `resample`: the 4 grid neighbours of each landmark get gradient) and
    the squared errors are *summed* over the N points and both coordinates, as Eq. 9.
    "official": the official code's `MSELoss(grid * mask, target * mask)`: Phi at the 4
    integer pixels around each landmark (floor/ceil of x and y) against the guide's
    landmark, summed and divided by the `2 H W` entries of the masked map -- about
    `2 / (H W)` times the "paper" value. (The official mask also drops landmarks within
    2 px of the border and keeps one of two landmarks that share a pixel; here every
    landmark counts.)
    """
    check_reduction(reduction)
    phi, landmarks_px, guide_landmarks_px = _float32(phi, landmarks_px, guide_landmarks_px)
    height, width = tf.shape(phi)[1], tf.shape(phi)[2]
    expected = normalize_points(guide_landmarks_px, height, width)
    if reduction != "official":
        sampled = resample(phi, landmarks_px)
        return tf.reduce_sum(tf.math.squared_difference(sampled, expected), axis=[1, 2])
    low, high = tf.floor(landmarks_px), tf.math.ceil(landmarks_px)
    corners = tf.stack(
        [
            low,
            tf.stack([high[..., 0], low[..., 1]], -1),
            tf.stack([low[..., 0], high[..., 1]], -1),
            high,
        ],
        axis=2,
    )  # [B, N, 4, 2] integer pixels: resample returns Phi there exactly
    # On an integer coordinate floor = ceil: the official mask marks that pixel once.
    distinct_x, distinct_y = tf.unstack(tf.cast(high > low, tf.float32), axis=-1)
    counts = tf.stack(
        [tf.ones_like(distinct_x), distinct_x, distinct_y, distinct_x * distinct_y], axis=-1
    )
    sampled = resample(phi, corners)
    squared = (
        tf.math.squared_difference(sampled, expected[:, :, tf.newaxis]) * counts[..., tf.newaxis]
    )
    entries = tf.cast(2 * height * width, tf.float32)
    return tf.reduce_sum(squared, axis=[1, 2, 3]) / entries


def tv_loss(phi, reduction="project", target="displacement"):
    """Eq. 10: squared finite differences of the flow along x and y, both channels.

    `target="flow"` takes them on `Phi` itself, as Eq. 10 and the official code do; the
    identity grid's constant slope then makes even the identity warp cost something and
    pulls the flow towards a contracted grid. `target="displacement"` takes them on
    `Phi - identity`, so any pure translation costs exactly zero.

    "paper": Eq. 10's squared norms, sums over the `(H-1) W` / `H (W-1)` differences and
    both channels. "official", "project": each direction's mean (the official `TVLoss`:
    sum / (C (H-1) W) and sum / (C H (W-1))), the two added; independent of image size.
    """
    check_reduction(reduction)
    if target not in TV_TARGETS:
        raise BadConfigError("model.tv_target", f"must be one of {TV_TARGETS}, got {target!r}")
    (phi,) = _float32(phi)
    if target == "displacement":
        phi = phi - identity_grid(tf.shape(phi)[1], tf.shape(phi)[2])
    along_y = tf.square(phi[:, 1:] - phi[:, :-1])
    along_x = tf.square(phi[:, :, 1:] - phi[:, :, :-1])
    reduce = _sum_per_sample if reduction == "paper" else _mean_per_sample
    return reduce(along_x) + reduce(along_y)


def _on_pixel_centres(points, height, width, tolerance=1e-3):
    """`[..., 2]` pixel points -> `[...]` bool: inside `[0, W-1] x [0, H-1]`, where a bilinear
    read uses no corner off the image. The `tolerance` (px) keeps the border pixels of an
    axis that is vertical or horizontal only to float32 rounding (cos(pi / 2) ~ -4e-8)."""
    limit = tf.cast(tf.stack([width, height]), points.dtype) - 1.0
    return tf.reduce_all((points >= -tolerance) & (points <= limit + tolerance), axis=-1)


def flow_symmetry_loss(phi, target_axis, guide_axis, shift):
    """The PyTorch reimplementation's symmetry term (sonack `BilinearFullSymLoss`).

    A face is mirror-symmetric about its axis, so a step along the target face's axis
    should map to a step along the guide face's axis: per sample, the mean over pixels
    `p` of `((Phi(p + s/2) - Phi(p - s/2)) . n_g)^2`, with `s` the target's axis times
    `shift * max(H, W)` pixels and `n_g` the unit normal of the guide's axis in Phi's
    normalised coordinates. `target_axis`, `guide_axis [B, 2]` are unit `(x, y)`
    directions in pixels (`gfrnet_tf.ops.symmetry_axis`), data without
    gradient. `phi [B, H, W, 2]` is the absolute normalised flow WarpNet outputs in either
    flow mode, read bilinearly (`resample`); only pixels whose two reads both lie within
    the pixel centres count, so nothing fades out over the border.

    The reimplementation steps forward, `Phi(p) - Phi(p + s)`; the central step spans the
    same `shift` but is exactly independent of the axes' signs, which are arbitrary. Any
    affine Phi whose linear part maps the target's axis onto the guide's costs 0.
    """
    phi, target_axis, guide_axis = _float32(phi, target_axis, guide_axis)
    shape = tf.shape(phi)
    height, width = shape[1], shape[2]
    size = tf.cast(tf.maximum(height, width), tf.float32)
    half_step = tf.reshape(tf.stop_gradient(0.5 * shift * size * target_axis), [-1, 1, 1, 2])  # px
    # The pixel direction (dx, dy) is along (dx / (W - 1), dy / (H - 1)) in Phi's coordinates.
    span_px = tf.cast(tf.stack([width, height]), tf.float32) - 1.0
    guide_axis = tf.math.l2_normalize(tf.stop_gradient(guide_axis) / span_px, axis=-1)
    guide_normal = tf.reshape(
        tf.stack([-guide_axis[:, 1], guide_axis[:, 0]], axis=-1), [-1, 1, 1, 2]
    )
    grid_x, grid_y = tf.meshgrid(
        tf.range(width, dtype=tf.float32), tf.range(height, dtype=tf.float32)
    )
    pixels = tf.expand_dims(tf.stack([grid_x, grid_y], axis=-1), 0)  # [1, H, W, 2]
    ahead, behind = pixels + half_step, pixels - half_step
    across = tf.reduce_sum((resample(phi, ahead) - resample(phi, behind)) * guide_normal, axis=-1)
    valid = _on_pixel_centres(ahead, height, width) & _on_pixel_centres(behind, height, width)
    valid = tf.cast(valid, tf.float32)  # [B, H, W]
    return _sum_per_sample(valid * tf.square(across)) / tf.maximum(_sum_per_sample(valid), 1.0)
