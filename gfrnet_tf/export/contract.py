"""What `gfrnet-export` writes into its artefacts about themselves, and the check of it.

A SavedModel or `.tflite` file is only run as a GFRNet when it says it is one: a model
that merely has inputs named `degraded` and `guide` (another size, one channel, an
identity function) would "restore" faces into nonsense. An export records
- a format marker: SavedModel variable collection `FORMAT_COLLECTION` (`[FORMAT]`);
  TFLite metadata entry `TFLITE_METADATA` (JSON `{"format", "image_size"}`);
- its face size: the SavedModel's `image_size` collection; the TFLite metadata and its
  fixed input shape;
- its signature: `serving_default` with `INPUTS` and `OUTPUTS` of the shapes and types
  `savedmodel` / `tflite` describe.
`saved_model_size` / `tflite_size` check all three and return the size, or say in one line
what the file is instead. Exports from before the marker (same signature and size record)
still load, with a warning, if they are SavedModels (their size record says GFRNet);
a `.tflite` file has nothing but names and shapes besides the marker, so it needs it.
"""

from __future__ import annotations

import json

import numpy as np
import tensorflow as tf
from absl import logging

from gfrnet_tf.errors import BadModelFileError

FORMAT = 1
FORMAT_COLLECTION = "gfrnet_tf_export_format"
IMAGE_SIZE_COLLECTION = "image_size"
TFLITE_METADATA = "gfrnet_tf.export"
DEFAULT_SIGNATURE = "serving_default"
INPUTS = ("degraded", "guide")
IMAGE_OUTPUTS = ("restored", "warped_guide")
# `flow` is an intermediate tensor of every forward pass: exporting it costs nothing.
OUTPUTS = (*IMAGE_OUTPUTS, "flow")
_MAKE_ONE = "not a GFRNet export (make one with gfrnet-export)"


def recorded_image_size(loaded) -> int | None:
    """The size `savedmodel.serving_archive` recorded in a loaded SavedModel, or None."""
    recorded = getattr(loaded, IMAGE_SIZE_COLLECTION, None)
    return int(recorded[0].numpy()) if recorded else None


def saved_model_size(loaded, source) -> int:
    """The face size of a loaded SavedModel that is a GFRNet export; `BadModelFileError`
    naming `source` otherwise."""
    signature = loaded.signatures.get(DEFAULT_SIGNATURE)
    if signature is None:
        raise BadModelFileError(source, f"no {DEFAULT_SIGNATURE} signature: {_MAKE_ONE}")
    inputs = signature.structured_input_signature[1]
    _check_names(source, "inputs", inputs, INPUTS)
    _check_names(source, "outputs", signature.structured_outputs, OUTPUTS)
    for name in INPUTS:
        _check_spec(source, name, inputs[name], tf.uint8, 3)
    for name in OUTPUTS:
        spec = signature.structured_outputs[name]
        _check_spec(
            source, name, spec, tf.float32 if name == "flow" else tf.uint8, 3 - (name == "flow")
        )
    size = recorded_image_size(loaded)
    if size is None:
        raise BadModelFileError(source, f"records no face size: {_MAKE_ONE}")
    marker = getattr(loaded, FORMAT_COLLECTION, None)
    if not marker:
        _legacy(source)
    elif int(marker[0].numpy()) != FORMAT:
        raise BadModelFileError(
            source, f"export format {int(marker[0].numpy())}; this gfrnet_tf reads format {FORMAT}"
        )
    return size


def tflite_size(interpreter, flatbuffer: bytes, source) -> int:
    """The face size of a `.tflite` file that is a GFRNet export (batch 1, float `[-1, 1]`);
    `BadModelFileError` naming `source` otherwise."""
    signatures = interpreter.get_signature_list()
    if DEFAULT_SIGNATURE not in signatures:
        raise BadModelFileError(source, f"no {DEFAULT_SIGNATURE} signature: {_MAKE_ONE}")
    runner = interpreter.get_signature_runner(DEFAULT_SIGNATURE)
    inputs, outputs = runner.get_input_details(), runner.get_output_details()
    _check_names(source, "inputs", inputs, INPUTS)
    _check_names(source, "outputs", outputs, OUTPUTS)
    size = int(inputs["degraded"]["shape"][1])
    for name, channels in (
        ("degraded", 3),
        ("guide", 3),
        ("restored", 3),
        ("warped_guide", 3),
        ("flow", 2),
    ):
        details = {**inputs, **outputs}[name]
        shape, expected = [int(n) for n in details["shape"]], [1, size, size, channels]
        if shape != expected or details["dtype"] != np.float32:
            raise BadModelFileError(
                source,
                f"{name} is {np.dtype(details['dtype']).name} {shape}, not float32 {expected}: "
                f"{_MAKE_ONE}",
            )
    metadata = tflite_metadata(flatbuffer)
    if metadata is None:  # nothing but the names and shapes above would say GFRNet
        raise BadModelFileError(
            source,
            "records no gfrnet_tf format marker: not a GFRNet export, or one made before "
            "exports carried the marker (export it again with gfrnet-export)",
        )
    if metadata.get("format") != FORMAT or metadata.get("image_size") != size:
        raise BadModelFileError(
            source,
            f"its {TFLITE_METADATA} record {metadata} does not describe it "
            f"(format {FORMAT}, image size {size})",
        )
    return size


def tflite_metadata(flatbuffer: bytes) -> dict | None:
    """The `TFLITE_METADATA` entry of a TFLite flatbuffer, or None. Read lazily through the
    schema's accessors (no copy of the weights)."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(flatbuffer, 0)
    for index in range(model.MetadataLength()):
        entry = model.Metadata(index)
        if entry.Name() == TFLITE_METADATA.encode():
            data = model.Buffers(entry.Buffer()).DataAsNumpy()
            try:
                return json.loads(bytes(data))
            except (TypeError, ValueError):
                return {}
    return None


def with_tflite_metadata(flatbuffer: bytes, image_size: int) -> bytes:
    """`flatbuffer` with the `TFLITE_METADATA` entry added (what `convert_to_tflite` returns)."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(
        json.dumps({"format": FORMAT, "image_size": int(image_size)}).encode(), np.uint8
    )
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = TFLITE_METADATA, len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _check_names(source, kind, found, expected) -> None:
    if set(found) != set(expected):
        raise BadModelFileError(
            source,
            f"its {DEFAULT_SIGNATURE} {kind} are {', '.join(sorted(found)) or 'none'}, not "
            f"{', '.join(expected)}: {_MAKE_ONE}",
        )


def _check_spec(source, name, spec, dtype, channels) -> None:
    shape = spec.shape
    if spec.dtype != dtype or shape.rank != 4 or shape[-1] != channels:
        raise BadModelFileError(
            source,
            f"{name} is {spec.dtype.name} {shape}, not {dtype.name} [batch, height, width, "
            f"{channels}]: {_MAKE_ONE}",
        )


def _legacy(source) -> None:
    logging.warning(
        "%s has no gfrnet_tf format marker (exported before exports carried one): its "
        "signature and size are those of a GFRNet export, so it is used",
        source,
    )
