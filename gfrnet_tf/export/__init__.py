"""A trained GFRNet as a TF Serving SavedModel, TFLite (LiteRT) flatbuffers or ONNX."""

from gfrnet_tf.export.savedmodel import export_savedmodel

__all__ = ["export_savedmodel"]
