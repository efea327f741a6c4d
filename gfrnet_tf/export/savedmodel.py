"""SavedModel export in the versioned layout TF Serving loads (`NAME/<version>/`).

Two signatures, both returning uint8 `restored` and `warped_guide` `[B, S, S, 3]` and
float32 `flow` `[B, S, S, 2]` (WarpNet's normalised `Phi`, for alignment measures):
- `serving_default`: uint8 `degraded` and `guide` `[B, S, S, 3]`;
- `serve_encoded`: `degraded` and `guide` as encoded JPEG/PNG strings `[B]` (what the
  REST API carries as `{"b64": ...}`).
The exported size `S` is recorded as the variable collection `image_size` (one int32
scalar), since the signatures leave H and W dynamic (see `serving_archive`), beside a
format marker (`contract`: what `gfrnet_tf.loading` checks before it runs an export).

A request holds at most `max_batch(S)` images (`MAX_REQUEST_PIXELS` decoded pixels in
all), checked before anything is decoded or run: one request of 10000 images would
otherwise take gigabytes, and a few such requests kill the server.
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
from gfrnet_tf.export.contract import (
    DEFAULT_SIGNATURE,
    FORMAT,
    FORMAT_COLLECTION,
    IMAGE_OUTPUTS,
    IMAGE_SIZE_COLLECTION,
)
from gfrnet_tf.export.graph_decode import decode_upright_rgb
from gfrnet_tf.export.transpose_conv import transpose_convs_as_phase_convs

ENCODED_SIGNATURE = "serve_encoded"
# Decoded pixels one request may hold: 16 faces at 256 px (64 at 128 px). The model's
# activations for them take about a gigabyte at pix2pix widths.
MAX_REQUEST_PIXELS = 16 * 256 * 256


def max_batch(image_size: int) -> int:
    """Images one request may hold at `image_size` (at least one)."""
    return max(1, MAX_REQUEST_PIXELS // (image_size * image_size))


def infer_uint8(model, degraded, guide):
    """uint8 `[B, S, S, 3]` pair -> uint8 `restored`, `warped_guide` (rounded, clipped) and
    float32 `flow`."""
    outputs = model(
        {"degraded": to_model_range(degraded), "guide": to_model_range(guide)}, training=False
    )
    images = {name: to_uint8(outputs[name]) for name in IMAGE_OUTPUTS}
    return {**images, "flow": tf.cast(outputs["flow"], tf.float32)}


def _shape_text(tensor):
    """The run-time shape as text ("2x32x32x3"; "" for a scalar). Compared as text, since
    the signature's static rank lets TF fold any rank arithmetic to the declared rank,
    while a request may still carry another one (TF Serving does not check it)."""
    return tf.strings.reduce_join(tf.strings.as_string(tf.shape(tensor)), separator="x")


def _checked_batch(tensor, name, rank_pattern, expected, limit):
    """Asserts the shape (`rank_pattern`: a regex over `_shape_text`), then a batch of 1 to
    `limit`, each with a message TF Serving passes on; returns `tensor` after the checks."""
    shape = _shape_text(tensor)
    rank = tf.debugging.Assert(
        tf.strings.regex_full_match(shape, rank_pattern), [f"{name} must be {expected}; got", shape]
    )
    # Explicit: automatic control dependencies order only stateful ops, and the shape ops
    # below would otherwise fail first with TF's less helpful message.
    with tf.control_dependencies([rank]):
        batch = tf.shape(tensor)[0]
        size = tf.debugging.Assert(
            tf.logical_and(batch >= 1, batch <= limit),
            [
                f"{name}: a request of",
                batch,
                f"images; send 1 to {limit} per request (at most {MAX_REQUEST_PIXELS} pixels)",
            ],
        )
    with tf.control_dependencies([size]):
        return tf.identity(tensor)


def _checked_images(images, name, image_size):
    """Asserts uint8 `[B, S, S, 3]` with 1 <= B <= `max_batch`; sets the static shape."""
    images = _checked_batch(
        images,
        name,
        rf"\d+x{image_size}x{image_size}x3",
        f"uint8 [batch, {image_size}, {image_size}, 3]",
        max_batch(image_size),
    )
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
        degraded = _checked_images(degraded, "degraded", image_size)
        guide = _checked_images(guide, "guide", image_size)
        check = tf.debugging.assert_equal(
            tf.shape(degraded)[0],
            tf.shape(guide)[0],
            message="degraded and guide must have the same batch size",
        )
        with tf.control_dependencies([check]):
            return infer_uint8(model, degraded, guide)

    def serve_encoded(degraded, guide):
        # Before anything is decoded: one string per image, a bounded number of them.
        degraded, guide = (
            _checked_batch(
                strings,
                name,
                r"\d+",
                "a batch [B] of encoded JPEG/PNG images (a single string: wrap it in a list)",
                max_batch(image_size),
            )
            for strings, name in ((degraded, "degraded"), (guide, "guide"))
        )
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
    # Variables, not more endpoints: every endpoint becomes a serving signature.
    for name, value in ((IMAGE_SIZE_COLLECTION, image_size), (FORMAT_COLLECTION, FORMAT)):
        archive.add_variable_collection(name, [tf.Variable(value, dtype=tf.int32, trainable=False)])
    return archive


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
