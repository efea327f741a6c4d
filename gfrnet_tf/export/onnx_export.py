"""ONNX export through Keras' own `model.export(format="onnx")` (tf2onnx underneath)."""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from gfrnet_tf.errors import BadConfigError
from gfrnet_tf.export.contract import INPUTS
from gfrnet_tf.io.atomic import atomic_path


def export_onnx(model, path, image_size: int) -> Path:
    """Writes `model` as ONNX to `path` atomically: float `[-1, 1]` NHWC in, the model's
    outputs out.

    The batch axis is dynamic. Needs the optional packages `tf2onnx` and `onnx`; without
    them this is a `BadConfigError` saying so, since ONNX is an optional format.
    """
    try:
        import onnx  # noqa: F401
        import tf2onnx  # noqa: F401
    except ImportError:
        raise BadConfigError(
            "--formats", "onnx needs the packages tf2onnx and onnx (pip install tf2onnx onnx)"
        ) from None
    path = Path(path)
    spec = {
        name: tf.TensorSpec([None, image_size, image_size, 3], tf.float32, name=name)
        for name in INPUTS
    }
    with atomic_path(path, suffix=".tmp.onnx") as temp:
        model.export(temp, format="onnx", input_signature=[spec], verbose=False)
    return path
