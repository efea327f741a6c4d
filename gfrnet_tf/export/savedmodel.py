"""SavedModel export in the versioned layout TF Serving loads (`NAME/<version>/`).

Two signatures, both returning uint8 `restored` and `warped_guide` `[B, S, S, 3]` and
float32 `flow` `[B, S, S, 2]` (WarpNet's normalised `Phi`, for alignment measures):
- `serving_default`: uint8 `degraded` and `guide` `[B, S, S, 3]`;
- `serve_encoded`: `degraded` and `guide` as encoded JPEG/PNG strings `[B]` (what the
  REST API carries as `{"b64": ...}`).
The exported size `S` is recorded as the variable collection `image_size` (one int32
scalar), since the signatures leave H and W dynamic (see `serving_archive`).

Bad requests fail inside the graph with a `tf.debugging` assertion whose message names
the input and the problem; TF Serving answers such a request with INVALID_ARGUMENT (REST:
HTTP 400, `{"error": "... <message> ..."}`) and keeps serving. We chose an error over an
"error" string output because a half-valid batch has no meaningful uint8 result for the
bad rows, and a failed request is what REST and gRPC clients already handle. The encoded
signature checks the format (JPEG/PNG magic bytes) and the size from the header before
decoding, so an oversized or decompression-bomb image is never allocated; it then decodes
as `gfrnet_tf.io.load_image` does (EXIF orientation, alpha on white: see `graph_decode`),
so a file restores to the same image through either path, and a file that ends early
fails with a readable message. Corruption inside otherwise complete data fails in TF's
decoder with its own message.
Only core TF ops are used (the warp is the project's core-op resampler), so stock
`tensorflow_model_server` runs the model.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path

import keras
import tensorflow as tf

from gfrnet_tf.data.encoded import checked_header_size
from gfrnet_tf.data.images import to_model_range, to_uint8
from gfrnet_tf.errors import BadConfigError
from gfrnet_tf.export.graph_decode import decode_upright_rgb
from gfrnet_tf.export.transpose_conv import transpose_convs_as_phase_convs

IMAGE_OUTPUTS = ("restored", "warped_guide")
# `flow` is an intermediate tensor of every forward pass: exporting it costs nothing.
OUTPUTS = (*IMAGE_OUTPUTS, "flow")
INPUTS = ("degraded", "guide")
DEFAULT_SIGNATURE = "serving_default"
IMAGE_SIZE_COLLECTION = "image_size"
ENCODED_SIGNATURE = "serve_encoded"


def infer_uint8(model, degraded, guide):
    """uint8 `[B, S, S, 3]` pair -> uint8 `restored`, `warped_guide` (rounded, clipped) and
    float32 `flow`."""
    outputs = model(
        {"degraded": to_model_range(degraded), "guide": to_model_range(guide)}, training=False
    )
    images = {name: to_uint8(outputs[name]) for name in IMAGE_OUTPUTS}
    return {**images, "flow": tf.cast(outputs["flow"], tf.float32)}


def _checked_images(images, name, image_size):
    """Asserts `[B, S, S, 3]` with a message TF Serving passes on, and sets the static shape."""
    check = tf.debugging.assert_equal(
        tf.shape(images)[1:],
        [image_size, image_size, 3],
        message=f"{name} must be uint8 [batch, {image_size}, {image_size}, 3]; got shape",
    )
    # Explicit: automatic control dependencies order only stateful ops, and the shape ops
    # below would otherwise fail first with TF's less helpful message.
    with tf.control_dependencies([check]):
        return tf.ensure_shape(images, [None, image_size, image_size, 3])


def decode_checked(encoded, name, image_size):
    """Encoded JPEG/PNG strings `[B]` -> uint8 `[B, S, S, 3]` upright RGB as `load_image`
    reads them, the size checked before decoding."""

    def decode_one(element):
        data, index = element
        size = checked_header_size(
            data, lambda ok, problem: tf.debugging.Assert(ok, [f"{name}: element", index, problem])
        )
        check = tf.debugging.Assert(
            tf.reduce_all(tf.equal(size, image_size)),
            [
                f"{name}: element",
                index,
                f"must be {image_size}x{image_size}; got height, width",
                size,
            ],
        )
        with tf.control_dependencies([check]):
            image = decode_upright_rgb(data, name, index)
        return tf.ensure_shape(image, [image_size, image_size, 3])

    indices = tf.range(tf.shape(encoded)[0])
    return tf.map_fn(
        decode_one,
        (encoded, indices),
        fn_output_signature=tf.TensorSpec([image_size, image_size, 3], tf.uint8),
    )


def serving_archive(model, image_size: int) -> keras.export.ExportArchive:
    """The model's variables plus the two serving endpoints, ready to `write_out`.

    Keras' `ExportArchive`, not a bare `tf.Module` holding the model: with the latter,
    the TF1-style loader that TF Serving and `saved_model_cli run` use cannot find some
    Keras 3 variables ("Could not find variable ...", measured), although
    `tf.saved_model.load` works.
    """
    # Dynamic H and W in the signatures so a wrong size reaches our assertion (and its
    # message) instead of an opaque shape error inside the network.
    images = tf.TensorSpec([None, None, None, 3], tf.uint8)
    strings = tf.TensorSpec([None], tf.string)

    def serve_images(degraded, guide):
        check = tf.debugging.assert_equal(
            tf.shape(degraded)[0],
            tf.shape(guide)[0],
            message="degraded and guide must have the same batch size",
        )
        with tf.control_dependencies([check]):
            degraded = _checked_images(degraded, "degraded", image_size)
            guide = _checked_images(guide, "guide", image_size)
        return infer_uint8(model, degraded, guide)

    def serve_encoded(degraded, guide):
        check = tf.debugging.assert_equal(
            tf.shape(degraded)[0],
            tf.shape(guide)[0],
            message="degraded and guide must have the same number of images",
        )
        with tf.control_dependencies([check]):
            return serve_images(
                decode_checked(degraded, "degraded", image_size),
                decode_checked(guide, "guide", image_size),
            )

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(DEFAULT_SIGNATURE, serve_images, input_signature=[images, images])
    archive.add_endpoint(ENCODED_SIGNATURE, serve_encoded, input_signature=[strings, strings])
    # A variable, not a third endpoint: every endpoint becomes a serving signature.
    archive.add_variable_collection(
        IMAGE_SIZE_COLLECTION, [tf.Variable(image_size, dtype=tf.int32, trainable=False)]
    )
    return archive


def recorded_image_size(loaded) -> int | None:
    """The size `serving_archive` recorded in a loaded SavedModel; None for other exports."""
    recorded = getattr(loaded, IMAGE_SIZE_COLLECTION, None)
    return int(recorded[0].numpy()) if recorded else None


def write_archive(archive, path, model, rewrite_transpose_conv: bool) -> None:
    """`archive.write_out(path)`; it traces the endpoints, with the phase-conv rewrite if asked."""
    rewrite = (
        transpose_convs_as_phase_convs(model)
        if rewrite_transpose_conv
        else contextlib.nullcontext()
    )
    with rewrite:
        archive.write_out(str(path), verbose=False)


def next_version(model_dir) -> int:
    """1 + the largest numeric version folder in `model_dir` (TF Serving serves the largest)."""
    model_dir = Path(model_dir)
    versions = (
        [int(p.name) for p in model_dir.iterdir() if re.fullmatch(r"\d+", p.name)]
        if model_dir.is_dir()
        else []
    )
    return max(versions, default=0) + 1


def export_savedmodel(
    model,
    model_dir,
    image_size: int,
    version: int | None = None,
    rewrite_transpose_conv: bool = False,
) -> Path:
    """Writes `model_dir/<version>/` atomically and returns that path.

    `model` follows the GFRNet inference contract (`call({"degraded", "guide"})` -> dict
    with `restored` and `warped_guide` in `[-1, 1]`). An existing version is never
    overwritten (TF Serving may be serving it); `version=None` takes the next free number.
    `rewrite_transpose_conv` traces the decoders as phase convolutions (see
    `transpose_conv`); TF's own transposed convolution is fast, so it is off by default.
    """
    model_dir = Path(model_dir)
    version = next_version(model_dir) if version is None else int(version)
    target = model_dir / str(version)
    if version < 1:
        raise BadConfigError(target, "the version must be a positive integer")
    if target.exists():
        raise BadConfigError(target, "this version already exists; pass another --version")
    model_dir.mkdir(parents=True, exist_ok=True)
    archive = serving_archive(model, image_size)
    # A dot-prefixed sibling: TF Serving only watches numeric folders, and the rename to
    # the version number is atomic on one file system, so a half-written model is never seen.
    temp = tempfile.mkdtemp(dir=model_dir, prefix=f".{version}.", suffix=".tmp")
    try:
        write_archive(archive, temp, model, rewrite_transpose_conv)
        os.rename(temp, target)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return target
