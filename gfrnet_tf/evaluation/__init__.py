"""Measuring models the way the paper does (Table 1) plus WarpNet's alignment."""

from gfrnet_tf.evaluation.metrics import (
    flow_end_point_error,
    landmark_error,
    psnr,
    ssim,
    unwarped_guide_landmark_error,
    warped_guide_landmark_error,
)

__all__ = [
    "flow_end_point_error",
    "landmark_error",
    "psnr",
    "ssim",
    "unwarped_guide_landmark_error",
    "warped_guide_landmark_error",
]
