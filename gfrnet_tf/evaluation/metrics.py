"""Quality measures of the Table 1 protocol plus the alignment measures of WarpNet.

Images are compared as the paper's images are stored: RGB, uint8 in [0, 255] (model
outputs are rounded to uint8 first), all three channels (not the Y channel of YCbCr).
PSNR and SSIM are `tf.image.psnr` / `tf.image.ssim` with `max_val=255` and SSIM's
defaults (Gaussian window 11, sigma 1.5, k1 0.01, k2 0.03, mean over the channels).

Landmark errors are normalised by the inter-ocular distance (outer eye corners, points
37 and 46 in 1-based iBUG-300W numbering), the usual 300-W normalisation, so that faces
of any size and image of any resolution give comparable numbers.
"""

from __future__ import annotations

import tensorflow as tf

from gfrnet_tf import ops
from gfrnet_tf.ibug68 import LEFT_EYE_OUTER, RIGHT_EYE_OUTER

# Identical images have infinite PSNR, which would make a whole test set's mean infinite;
# they count as 100 dB (one grey level wrong in ~10^6 values, far beyond any restoration).
MAX_PSNR_DB = 100.0


def psnr(reference, image):
    """PSNR in dB per image of two uint8 RGB batches `[B, H, W, 3]` -> `[B]`, at most 100."""
    value = tf.image.psnr(tf.cast(reference, tf.float32), tf.cast(image, tf.float32), max_val=255.0)
    return tf.minimum(value, MAX_PSNR_DB)


def ssim(reference, image):
    """SSIM per image of two uint8 RGB batches `[B, H, W, 3]` (H, W >= 11) -> `[B]`."""
    return tf.image.ssim(tf.cast(reference, tf.float32), tf.cast(image, tf.float32), max_val=255.0)


def inter_ocular_distance(landmarks):
    """Distance between the outer eye corners of 68-point landmarks `[..., 68, 2]` -> `[...]`."""
    landmarks = tf.convert_to_tensor(landmarks, tf.float32)
    return tf.norm(landmarks[..., LEFT_EYE_OUTER, :] - landmarks[..., RIGHT_EYE_OUTER, :], axis=-1)


def landmark_error(points, reference):
    """Mean point-to-point distance `[..., 68, 2]` -> `[...]`, in inter-ocular distances.

    The normaliser is the reference's inter-ocular distance, so two errors measured
    against the same reference (e.g. the guide before and after warping) are comparable.
    """
    points = tf.convert_to_tensor(points, tf.float32)
    reference = tf.convert_to_tensor(reference, tf.float32)
    distances = tf.norm(points - reference, axis=-1)
    return tf.reduce_mean(distances, axis=-1) / inter_ocular_distance(reference)


def flow_at_points(flow, points):
    """Where the flow sends target points: guide pixel coordinates `[B, N, 2]`.

    `flow` is `Phi` `[B, H, W, 2]` (normalised guide coordinates per target pixel) and
    `points` are target pixel coordinates `[B, N, 2]`. `Phi` is sampled bilinearly with
    the project's resampler, exactly as the landmark loss does, so this metric and the
    loss agree. Guide and target have the same size (`H x W`).
    """
    flow = tf.convert_to_tensor(flow, tf.float32)
    height, width = flow.shape[1], flow.shape[2]
    sampled = ops.resample(flow, tf.convert_to_tensor(points, tf.float32))
    return ops.denormalize_points(sampled, height, width)


def warped_guide_landmark_error(flow, target_landmarks, guide_landmarks):
    """How far the warped guide's features sit from the target's: `[B]` inter-ocular units.

    The warped guide shows at target pixel `p` the guide content at `Phi(p)`; it is
    aligned when `Phi(l_target) = l_guide` for every landmark, so the error is
    `|| Phi(l_target) - l_guide ||` measured in guide pixels.
    """
    return landmark_error(flow_at_points(flow, target_landmarks), guide_landmarks)


def unwarped_guide_landmark_error(target_landmarks, guide_landmarks):
    """The same error for the guide as it is (`Phi` = identity): `|| l_target - l_guide ||`."""
    return landmark_error(target_landmarks, guide_landmarks)


def flow_end_point_error(flow, true_flow):
    """Mean end-point error in guide pixels between two normalised flows `[B, H, W, 2]` -> `[B]`.

    A normalised unit spans `(W - 1) / 2` pixels in x and `(H - 1) / 2` in y (pixel
    centres, align-corners convention of the project).
    """
    flow = tf.convert_to_tensor(flow, tf.float32)
    true_flow = tf.convert_to_tensor(true_flow, tf.float32)
    height, width = flow.shape[1], flow.shape[2]
    pixels_per_unit = tf.constant([(width - 1) / 2.0, (height - 1) / 2.0], tf.float32)
    end_points = tf.norm((flow - true_flow) * pixels_per_unit, axis=-1)
    return tf.reduce_mean(end_points, axis=[1, 2])
