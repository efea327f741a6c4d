"""Measuring models the way the paper does (Table 1) plus WarpNet's alignment.

The measures below are `metrics`', loaded on first use: the commands read
`evaluation.test_protocols` for their `--help` without loading TensorFlow.
"""

MEASURES = (
    "flow_end_point_error",
    "landmark_error",
    "psnr",
    "ssim",
    "unwarped_guide_landmark_error",
    "warped_guide_landmark_error",
)
__all__ = list(MEASURES)


def __getattr__(name):
    if name in MEASURES:
        from gfrnet_tf.evaluation import metrics

        return getattr(metrics, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
