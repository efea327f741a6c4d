"""Core-TF image ops: the tfa-compatible resampler, flow grids, the local-discriminator crop, the
faces' symmetry axis."""

from gfrnet_tf.ops.crop import crop_to_landmarks, landmark_boxes
from gfrnet_tf.ops.grid import denormalize_points, identity_grid, normalize_points
from gfrnet_tf.ops.landmarks import symmetry_axis
from gfrnet_tf.ops.resample import resample, warp_image

__all__ = [
    "resample",
    "warp_image",
    "identity_grid",
    "normalize_points",
    "denormalize_points",
    "landmark_boxes",
    "crop_to_landmarks",
    "symmetry_axis",
]
