"""Whole-photo restoration: run a trained model on detected faces and paste them back."""

from gfrnet_tf.restoration.guide_choice import choose_guide, pose_distance
from gfrnet_tf.restoration.paste import feather_mask, paste_face

__all__ = ["choose_guide", "feather_mask", "paste_face", "pose_distance"]
