"""ONNX export through Keras' own `model.export(format="onnx")` (tf2onnx underneath)."""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from gfrnet_tf.errors import optional_dependency
from gfrnet_tf.export.savedmodel import INPUTS
from gfrnet_tf.io.atomic import atomic_path


def export_onnx(model, path, image_size: int) -> Path:
    """Writes `model` as ONNX to `path` atomically: float `[-1, 1]` NHWC in, the model's
    outputs out.

    The batch axis is dynamic. Needs the optional packages `tf2onnx` and `onnx` (extra
    `onnx`); without them this is a `MissingDependencyError` saying so.
    """
    with optional_dependency("--formats"):
        import onnx  # noqa: F401
        import tf2onnx  # noqa: F401
    path = Path(path)
    spec = {
        name: tf.TensorSpec([None, image_size, image_size, 3], tf.float32, name=name)
        for name in INPUTS
    }
    with atomic_path(path, suffix=".tmp.onnx") as temp:
        model.export(temp, format="onnx", input_signature=[spec], verbose=False)
    return path
