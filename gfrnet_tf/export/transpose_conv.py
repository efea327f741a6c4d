"""4x4 stride-2 transposed convolutions rewritten as one stride-1 convolution + depth_to_space.

Why: TFLite's fp32 TRANSPOSE_CONV kernel is ~10x slower than TensorFlow's on this CPU while
its CONV_2D is on par (docs/DESIGN.md, "Performance facts"), and the decoders of WarpNet and
RecNet are eight such layers each. The rewrite is exact, not an approximation: it only
re-arranges the trained weights at export time, and keeps their number and the FLOPs.

Derivation (one axis; the other is the same). Keras' `Conv2DTranspose(k=4, s=2, "same")`
is the gradient of a stride-2 convolution padded by 1, so output row `j` receives input row
`i` through tap `t` where `2 i + t - 1 = j`:
    out[2m]     = in[m - 1] * w[3] + in[m] * w[1]
    out[2m + 1] = in[m] * w[2]     + in[m + 1] * w[0]
With `P` the input zero-padded by 1 (`P[r] = in[r - 1]`) both phases are 2-tap windows:
even rows use `P[m], P[m + 1]` with taps `(w[3], w[1])`, odd rows `P[m + 1], P[m + 2]`
with taps `(w[2], w[0])`. So one 2x2 "valid" convolution of `P`, whose `4 * filters`
output channels hold the four (row, col) phases, gives every phase on an `(H+1, W+1)`
grid; phase `(py, px)` is its crop starting at `(py, px)`, and `depth_to_space(2)`
interleaves the four crops into the `[2H, 2W]` result.
"""

from __future__ import annotations

import contextlib

import keras
import numpy as np
import tensorflow as tf

# The transposed-conv taps of the 2x2 window, per output phase (0 = even, 1 = odd).
_PHASE_TAPS = ((3, 1), (2, 0))


def is_rewritable(layer) -> bool:
    """True for the layers the rewrite covers: 2-D, kernel 4, stride 2, "same", NHWC."""
    return (
        isinstance(layer, keras.layers.Conv2DTranspose)
        and tuple(layer.kernel_size) == (4, 4)
        and tuple(layer.strides) == (2, 2)
        and layer.padding == "same"
        and layer.output_padding is None
        and tuple(layer.dilation_rate) == (1, 1)
        and layer.data_format == "channels_last"
    )


def phase_kernel(kernel: np.ndarray) -> np.ndarray:
    """Conv2DTranspose kernel `[4, 4, out, in]` -> conv kernel `[2, 2, in, 4 * out]`.

    Output channel `(2 * row_phase + col_phase) * out + c` is the order `depth_to_space`
    reads, so the cropped phases interleave into the transposed convolution's result.
    """
    kernel = np.asarray(kernel)
    if kernel.shape[:2] != (4, 4):
        raise ValueError(f"expected a 4x4 transposed-conv kernel, got shape {kernel.shape}")
    out_channels, in_channels = kernel.shape[2:]
    result = np.zeros((2, 2, in_channels, 4, out_channels), kernel.dtype)
    for row_phase, row_taps in enumerate(_PHASE_TAPS):
        for col_phase, col_taps in enumerate(_PHASE_TAPS):
            for dy, ty in enumerate(row_taps):
                for dx, tx in enumerate(col_taps):
                    result[dy, dx, :, 2 * row_phase + col_phase, :] = kernel[ty, tx].T
    return result.reshape(2, 2, in_channels, 4 * out_channels)


def phase_call(layer):
    """A replacement for `layer.call` that computes the same map via `phase_kernel`.

    The kernel is re-arranged once, from the layer's current weights, and captured as a
    constant: this is for export tracing, where the weights are frozen anyway.
    """
    kernel = tf.constant(phase_kernel(keras.ops.convert_to_numpy(layer.kernel)))
    bias = None
    if layer.use_bias:
        bias = tf.constant(np.tile(keras.ops.convert_to_numpy(layer.bias), 4))
    filters = layer.filters
    activation = layer.activation

    def call(inputs):
        shape = tf.shape(inputs)
        height, width = shape[1], shape[2]
        padded = tf.pad(inputs, [[0, 0], [1, 1], [1, 1], [0, 0]])
        grid = tf.nn.conv2d(padded, kernel, strides=1, padding="VALID")
        phases = tf.concat(
            [
                grid[
                    :,
                    py : py + height,
                    px : px + width,
                    (2 * py + px) * filters : (2 * py + px + 1) * filters,
                ]
                for py in (0, 1)
                for px in (0, 1)
            ],
            axis=-1,
        )
        if bias is not None:
            phases = tf.nn.bias_add(phases, bias)
        return activation(tf.nn.depth_to_space(phases, 2))

    return call


@contextlib.contextmanager
def transpose_convs_as_phase_convs(model: keras.Layer):
    """Within the block, every rewritable Conv2DTranspose in `model` runs as `phase_call`.

    Used around the tracing of an export function; the layers' own `call` is restored on
    exit, so the Keras model itself (training, saving) is never changed.
    """
    layers = [layer for layer in model._flatten_layers() if is_rewritable(layer)]
    for layer in layers:
        layer.call = phase_call(layer)
    try:
        yield len(layers)
    finally:
        for layer in layers:
            del layer.call
