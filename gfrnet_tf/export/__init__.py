"""A trained GFRNet as a TF Serving SavedModel, TFLite (LiteRT) flatbuffers or ONNX.

`export_savedmodel` is loaded on first use: gfrnet-export reads `export.formats` for its
`--help` without loading TensorFlow.
"""

__all__ = ["export_savedmodel"]


def __getattr__(name):
    if name == "export_savedmodel":
        from gfrnet_tf.export.savedmodel import export_savedmodel

        return export_savedmodel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
