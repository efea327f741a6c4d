"""The degradation model of Eq. 4, per sample and in the graph.

`I_d = ((I * k_rho) downscale_s + n_sigma)_JPEG_q`, then bicubic upscale back to the input
size (§3.2). Works on one float image `[H, W, 3]` in `[0, 1]` because
`tf.image.adjust_jpeg_quality` encodes one image at a time and every sample draws its own
parameters; the pipeline maps it before batching. Randomness is stateless: a `[2]` seed
fully determines both the parameters and the noise, which is what makes the seeded
(validation) mode bit-identical across epochs.
"""

from __future__ import annotations

import math

import tensorflow as tf

from gfrnet_tf.errors import BadConfigError

PARAMETERS = ("blur", "scale", "noise", "jpeg_quality")


def _steps(start, stop, step):
    """MATLAB-style `start:step:stop` as a tuple of rounded floats."""
    count = int(round((stop - start) / step)) + 1
    return tuple(round(start + k * step, 6) for k in range(count))


def paper_parameter_sets():
    """§3.2: blur rho {0, 1:0.1:3}, scale {1:0.1:8}, noise {0:1:7} (0-255), JPEG q {0, 10:1:40}."""
    return {
        "blur": (0.0,) + _steps(1.0, 3.0, 0.1),
        "scale": _steps(1.0, 8.0, 0.1),
        "noise": _steps(0.0, 7.0, 1.0),
        "jpeg_quality": (0,) + tuple(range(10, 41)),
    }


def check_parameter_sets(sets, image_size, source="input.degradation"):
    """Raises `BadConfigError` for a set that cannot be sampled or applied to `image_size`."""
    for name in PARAMETERS:
        values = tuple(sets.get(name, ()))
        if not values:
            raise BadConfigError(f"{source}.{name}", "needs at least one value")
        lowest = {"blur": 0.0, "scale": 1.0, "noise": 0.0, "jpeg_quality": 0}[name]
        if min(values) < lowest:
            raise BadConfigError(f"{source}.{name}", f"values must be >= {lowest}, got {values}")
    qualities = sets["jpeg_quality"]
    if max(qualities) > 100 or any(int(q) != q for q in qualities):
        raise BadConfigError(
            f"{source}.jpeg_quality", f"integers 0 (lossless) to 100, got {qualities}"
        )
    # The reflected border of the widest blur kernel must fit inside the image.
    if math.ceil(3.0 * max(sets["blur"])) >= image_size:
        raise BadConfigError(
            f"{source}.blur", f"rho {max(sets['blur'])} too wide for {image_size} px"
        )


def sample_degradation(seed, sets):
    """Draws one value uniformly from each set -> dict of scalars (`jpeg_quality` int32)."""
    seeds = tf.random.experimental.stateless_split(seed, len(PARAMETERS))
    degradation = {}
    for name, name_seed in zip(PARAMETERS, tf.unstack(seeds)):
        dtype = tf.int32 if name == "jpeg_quality" else tf.float32
        values = tf.constant(tuple(sets[name]), dtype)
        choice = tf.random.stateless_uniform(
            [], name_seed, minval=0, maxval=len(sets[name]), dtype=tf.int32
        )
        degradation[name] = tf.gather(values, choice)
    return degradation


def fixed_degradation(setting):
    """One setting (e.g. `scale=4` for the Table 1 protocol) as the same dict of scalars."""
    return {
        name: tf.constant(setting[name], tf.int32 if name == "jpeg_quality" else tf.float32)
        for name in PARAMETERS
    }


def _keys_cubic(x):
    """The bicubic kernel of `tf.image.resize` (Keys, a = -0.5), support [-2, 2]."""
    x = tf.abs(x)
    near = ((1.5 * x - 2.5) * x) * x + 1.0
    far = ((-0.5 * x + 2.5) * x - 4.0) * x + 2.0
    return tf.where(x <= 1.0, near, tf.where(x < 2.0, far, 0.0))


def resize_matrix(in_size, out_size):
    """`[out, in]` weights of `tf.image.resize(..., "bicubic", antialias=True)` along one axis.

    Half-pixel centres; when shrinking, the kernel is stretched by in/out (the antialias);
    taps outside the image are dropped and each row renormalised, as TF does. in == out
    gives the identity matrix exactly.
    """
    stretch = tf.cast(in_size, tf.float32) / tf.cast(out_size, tf.float32)
    centres = (tf.range(out_size, dtype=tf.float32) + 0.5) * stretch
    sources = tf.range(in_size, dtype=tf.float32) + 0.5
    weights = _keys_cubic((sources - centres[:, tf.newaxis]) / tf.maximum(stretch, 1.0))
    return weights / tf.reduce_sum(weights, axis=1, keepdims=True)


def resize_separable(image, height, width):
    """`tf.image.resize(image, [height, width], "bicubic")` of `[h, w, C]` as two GEMMs.

    Equal when upscaling (to 2e-6, tested) and, unlike TF's resize kernel, XLA-compilable.
    """
    shape = tf.shape(image)
    return _separable(image, resize_matrix(shape[0], height), resize_matrix(shape[1], width))


def blur_matrix(size, rho):
    """`[size, size]` Gaussian blur (std rho px, taps within ceil(3 rho)); rho = 0 -> identity.

    Borders reflect without repeating the edge (OpenCV's default BORDER_REFLECT_101): a tap
    at -k reads pixel k, one at size-1+k reads size-1-k, so those weights fold back onto
    the same matrix.
    """
    radius = tf.math.ceil(3.0 * rho)
    safe_rho = tf.maximum(rho, 1e-3)

    def taps(offset):
        return tf.where(tf.abs(offset) <= radius, tf.exp(-0.5 * tf.square(offset / safe_rho)), 0.0)

    index = tf.range(size, dtype=tf.float32)
    out, source = index[:, tf.newaxis], index[tf.newaxis, :]
    last = tf.cast(size, tf.float32) - 1.0
    weights = (
        taps(out - source)
        + tf.where(source > 0.0, taps(out + source), 0.0)
        + tf.where(source < last, taps(2.0 * last - out - source), 0.0)
    )
    total = tf.reduce_sum(taps(tf.range(-radius, radius + 1.0)))
    return tf.where(rho > 0.0, weights / total, tf.eye(size))


def _separable(image, rows, cols):
    """`rows [h, H] @ image[..., c] @ cols[w, W]^T` for each channel of `[H, W, C]`.

    Two tensordots (plain GEMMs) and transposes: measured 5x faster than the equivalent
    three-operand `tf.einsum` on CPU.
    """
    vertical = tf.transpose(tf.tensordot(rows, image, 1), [1, 0, 2])  # [W, h, C]
    result = tf.transpose(tf.tensordot(cols, vertical, 1), [1, 0, 2])  # [h, w, C]
    result.set_shape([None, None, image.shape[-1]])
    return result


def gaussian_blur(image, rho):
    """Gaussian blur of `[H, W, C]` with std `rho` px (kernel 2*ceil(3 rho)+1, reflected border)."""
    shape = tf.shape(image)
    return _separable(image, blur_matrix(shape[0], rho), blur_matrix(shape[1], rho))


def _compress(image, quality):
    """JPEG at `quality`; q = 0 means lossless, i.e. only the 8-bit rounding of a PNG file."""
    image = tf.clip_by_value(image, 0.0, 1.0)
    return tf.cond(
        quality > 0,
        lambda: tf.image.adjust_jpeg_quality(image, quality),
        lambda: tf.round(image * 255.0) / 255.0,
    )


def degrade(image, degradation, seed):
    """Eq. 4 on a float `[H, W, 3]` image in `[0, 1]` -> same shape, clipped to `[0, 1]`.

    `degradation` holds scalar `blur` (rho, px), `scale` (s >= 1), `noise` (sigma on the
    0-255 scale) and `jpeg_quality` (0 = lossless); `seed` (`[2]` ints) draws the noise.
    """
    image = tf.convert_to_tensor(image, tf.float32)
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    scale = degradation["scale"]

    def shrunk(size):
        return tf.maximum(tf.cast(tf.round(tf.cast(size, tf.float32) / scale), tf.int32), 1)

    # Blur and antialiased downscale are linear and separable, so both fold into one small
    # matrix per axis: two matmuls instead of a depthwise convolution with a per-sample
    # kernel size (9-12 ms at 256 px) plus an antialiased resize (5-8 ms).
    small_height, small_width = shrunk(height), shrunk(width)

    def fused(size, small_size):
        return resize_matrix(size, small_size) @ blur_matrix(size, degradation["blur"])

    rows = fused(height, small_height)
    square = image.shape[0] is not None and image.shape[0] == image.shape[1]
    cols = rows if square else fused(width, small_width)  # pipeline images are square
    small = _separable(image, rows, cols)
    noise = tf.random.stateless_normal(tf.shape(small), seed, stddev=degradation["noise"] / 255.0)
    compressed = _compress(small + noise, degradation["jpeg_quality"])
    # Upscaling needs no antialias, and TF's bicubic resize equals resize_matrix there
    # (to 2e-7) at a tenth of the dense matmuls' cost.
    restored = tf.image.resize(compressed, [height, width], "bicubic")
    restored = tf.clip_by_value(restored, 0.0, 1.0)
    restored.set_shape(image.shape)
    return restored
