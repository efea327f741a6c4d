"""Deployment artefacts: SavedModel for TF Serving, TFLite (LiteRT) for on-device use."""

from gfrnet_tf.export.model_file import load_model_for_export
from gfrnet_tf.export.savedmodel import export_savedmodel

__all__ = ["load_model_for_export", "export_savedmodel"]
