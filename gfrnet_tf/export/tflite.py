"""TFLite conversion (fp32 / fp16 / int8) and running the result with LiteRT.

The TFLite model takes float32 `degraded` and `guide` `[batch, S, S, 3]` in the model
range `[-1, 1]` and returns float32 `restored` and `warped_guide` in `[-1, 1]` and the
normalised `flow` `[batch, S, S, 2]` -- the Keras model's own interface, so parity is
measured without uint8 rounding in the way; int8 models keep float input/output and
quantise inside (the flow's `TANH` stays float: see `WARP_FLOAT_OPS`). Only TFLite
builtin ops are allowed (`TFLITE_BUILTINS`): the converter fails instead of emitting
Flex or custom ops, which LiteRT on a phone would not have.
"""

from __future__ import annotations

import itertools
import tempfile

import keras
import numpy as np
import tensorflow as tf

from gfrnet_tf.errors import BadConfigError, optional_dependency
from gfrnet_tf.export.formats import CALIBRATION_STEPS, QUANTIZATIONS
from gfrnet_tf.export.savedmodel import DEFAULT_SIGNATURE, INPUTS, OUTPUTS, write_archive

# int8 keeps these op types in float: they are the warp (bilinear resampling of the guide)
# and the flow arithmetic, plus the tanh outputs. 8-bit sampling coordinates are off by up
# to a pixel at 256 px and, measured on a 32 px model, the fully quantised warp was
# useless (warped guide off by up to 1.0 on [-1, 1]) -- and the plain converter path's
# fully quantised model aborted LiteRT in allocate_tensors. The convolutions, which are
# nearly all of the work, stay int8.
WARP_FLOAT_OPS = (
    "ABS",
    "ADD",
    "CAST",
    "FLOOR",
    "GATHER",
    "GREATER",
    "GREATER_EQUAL",
    "LESS",
    "LESS_EQUAL",
    "LOGICAL_AND",
    "MAXIMUM",
    "MINIMUM",
    "MUL",
    "RESHAPE",
    "ROUND",
    "SELECT",
    "SELECT_V2",
    "STRIDED_SLICE",
    "SUB",
    "TANH",
)


def convert_to_tflite(
    model,
    image_size: int,
    quantization: str = "fp32",
    representative_data=None,
    batch_size: int = 1,
    rewrite_transpose_conv: bool = True,
    float_ops=WARP_FLOAT_OPS,
) -> bytes:
    """Returns the flatbuffer of `model` converted with the given `quantization`.

    `representative_data` (int8 only): an iterable of `{"degraded", "guide"}` float arrays
    `[B, S, S, 3]` in `[-1, 1]`, e.g. a `gfrnet_tf.data` dataset's inputs; each element is
    fed one sample at a time. `rewrite_transpose_conv` (default on) replaces the decoders'
    transposed convolutions by exact phase convolutions, which TFLite runs ~10x faster.
    `float_ops` (int8 only): TFLite op types left in float (selective quantisation).
    """
    if quantization not in QUANTIZATIONS:
        raise BadConfigError(
            "quantization", f"must be one of {QUANTIZATIONS}, got {quantization!r}"
        )
    if quantization == "int8" and representative_data is None:
        raise BadConfigError("quantization", "int8 needs representative_data for calibration")
    spec = tf.TensorSpec([batch_size, image_size, image_size, 3], tf.float32)

    def infer(degraded, guide):
        outputs = model({"degraded": degraded, "guide": guide}, training=False)
        return {name: outputs[name] for name in OUTPUTS}

    # Through Keras' ExportArchive and a SavedModel, as `model.export(format="litert")`
    # does: converting a concrete function directly leaves the Keras 3 variables as
    # unfrozen READ_VARIABLE ops that fail at run time.
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(DEFAULT_SIGNATURE, infer, input_signature=[spec, spec])
    with tempfile.TemporaryDirectory(prefix="gfrnet-tflite-") as saved:
        write_archive(archive, saved, model, rewrite_transpose_conv)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if quantization == "fp16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif quantization == "int8":
            return _selectively_quantized(converter, representative_data, batch_size, float_ops)
        return converter.convert()


def _selectively_quantized(converter, representative_data, batch_size, float_ops) -> bytes:
    """int8 with `float_ops` denylisted, via the (public, experimental) quantisation debugger."""
    samples = lambda: _calibration_samples(representative_data, batch_size)  # noqa: E731
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = samples
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=list(float_ops))
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=samples, debug_options=options
    )
    return debugger.get_nondebug_quantized_model()


def _calibration_samples(representative_data, batch_size):
    """Yields `{"degraded", "guide"}` float32 `[batch_size, S, S, 3]`, one sample repeated.

    The converted model's batch is fixed, and the calibrator cannot resize it (the warp
    reshapes by the batch), so each sample is repeated to fill it.
    """
    samples = (
        {
            name: np.repeat(np.asarray(batch[name], np.float32)[i : i + 1], batch_size, 0)
            for name in INPUTS
        }
        for batch in representative_data
        for i in range(len(batch[INPUTS[0]]))
    )
    yield from itertools.islice(samples, CALIBRATION_STEPS)


def litert_interpreter(model_content: bytes, num_threads: int = 2):
    """A LiteRT interpreter (XNNPACK delegate by default) with tensors allocated."""
    with optional_dependency():
        from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_content, num_threads=num_threads)
    interpreter.allocate_tensors()
    return interpreter


def run_tflite(interpreter, degraded, guide) -> dict:
    """Runs the converted model's signature on float `[-1, 1]` inputs; float outputs."""
    runner = interpreter.get_signature_runner()
    outputs = runner(degraded=np.asarray(degraded, np.float32), guide=np.asarray(guide, np.float32))
    return {name: outputs[name] for name in OUTPUTS}


def op_names(interpreter) -> set[str]:
    """The op types in the model, as LiteRT names them (Flex/custom ops show their own name)."""
    return {op["op_name"] for op in interpreter._get_ops_details()}
