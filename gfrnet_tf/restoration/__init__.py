"""Whole-photo restoration: run a trained model on detected faces and paste them back;
whole libraries by person (`library`, docs/PEOPLE.md)."""

from gfrnet_tf.restoration.paste import feather_mask, paste_face
from gfrnet_tf.restoration.photos import PhotoRestorer
from gfrnet_tf.restoration.restorer import Restoration, load_restorer

__all__ = ["PhotoRestorer", "Restoration", "feather_mask", "load_restorer", "paste_face"]
