"""4x4 stride-2 transposed convolutions rewritten as a stride-1 convolution + depth_to_space.

Why: TFLite's fp32 TRANSPOSE_CONV kernel is ~10x slower than TensorFlow's on this CPU while
its CONV_2D is on par (DESIGN.md, "Performance facts"), and the decoders of WarpNet and
RecNet are eight such layers each. The rewrite is exact, not an approximation: it only
re-arranges the trained weights at export time.

Derivation (one axis; the other is the same). Keras' `Conv2DTranspose(k=4, s=2, "same")`
is the gradient of a stride-2 convolution padded by 1, so output row `j` receives input row
`i` through tap `t` where `2 i + t - 1 = j`:
    out[2m]     = in[m - 1] * w[3] + in[m] * w[1]
    out[2m + 1] = in[m] * w[2]     + in[m + 1] * w[0]
Each output phase is therefore a 2-tap convolution over the input rows `m-1, m, m+1`. A
single 3x3 "same" convolution whose `4 * filters` output channels hold the four (row, col)
phases, followed by `depth_to_space(2)`, computes the whole layer in one CONV_2D.
"""

from __future__ import annotations

import contextlib

import keras
import numpy as np
import tensorflow as tf

# For each output phase (0 = even, 1 = odd): which transposed-conv tap feeds the 3x3
# window position (offset -1, 0, +1); -1 means the position does not contribute.
_PHASE_TAPS = ((3, 1, -1), (-1, 2, 0))


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
    """Conv2DTranspose kernel `[4, 4, out, in]` -> conv kernel `[3, 3, in, 4 * out]`.

    Output channel `(2 * row_phase + col_phase) * out + c` is the order `depth_to_space`
    reads, so its result is the transposed convolution's `[2H, 2W, out]` map.
    """
    kernel = np.asarray(kernel)
    if kernel.shape[:2] != (4, 4):
        raise ValueError(f"expected a 4x4 transposed-conv kernel, got shape {kernel.shape}")
    out_channels, in_channels = kernel.shape[2:]
    result = np.zeros((3, 3, in_channels, 4, out_channels), kernel.dtype)
    for row_phase, row_taps in enumerate(_PHASE_TAPS):
        for col_phase, col_taps in enumerate(_PHASE_TAPS):
            phase = 2 * row_phase + col_phase
            for dy, ty in enumerate(row_taps):
                for dx, tx in enumerate(col_taps):
                    if ty >= 0 and tx >= 0:
                        result[dy, dx, :, phase, :] = kernel[ty, tx].T
    return result.reshape(3, 3, in_channels, 4 * out_channels)


def phase_call(layer):
    """A replacement for `layer.call` that computes the same map via `phase_kernel`.

    The kernel is re-arranged once, from the layer's current weights, and captured as a
    constant: this is for export tracing, where the weights are frozen anyway.
    """
    kernel = tf.constant(phase_kernel(keras.ops.convert_to_numpy(layer.kernel)))
    bias = None
    if layer.use_bias:
        bias = tf.constant(np.tile(keras.ops.convert_to_numpy(layer.bias), 4))
    activation = layer.activation

    def call(inputs):
        phases = tf.nn.conv2d(inputs, kernel, strides=1, padding="SAME")
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
