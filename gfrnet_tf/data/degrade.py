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
        raise BadConfigError(f"{source}.jpeg_quality", f"integers 0 (lossless) to 100, got {qualities}")
    # The reflected border of the widest blur kernel must fit inside the image.
    if math.ceil(3.0 * max(sets["blur"])) >= image_size:
        raise BadConfigError(f"{source}.blur", f"rho {max(sets['blur'])} too wide for {image_size} px")


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


def gaussian_blur(image, rho):
    """Separable Gaussian blur of `[H, W, C]` with std `rho` px; kernel 2*ceil(3 rho)+1; rho=0 -> id.

    Borders are reflected (OpenCV's default BORDER_REFLECT_101) so edges do not darken.
    """

    def blur():
        radius = tf.cast(tf.math.ceil(3.0 * rho), tf.int32)
        offsets = tf.cast(tf.range(-radius, radius + 1), tf.float32)
        taps = tf.exp(-0.5 * tf.square(offsets / rho))
        taps /= tf.reduce_sum(taps)
        channels = tf.shape(image)[-1]
        taps = tf.tile(taps[:, tf.newaxis, tf.newaxis], [1, channels, 1])
        padded = tf.pad(image[tf.newaxis], [[0, 0], [radius, radius], [radius, radius], [0, 0]], "REFLECT")
        vertical = tf.nn.depthwise_conv2d(padded, taps[:, tf.newaxis], [1, 1, 1, 1], "VALID")
        return tf.nn.depthwise_conv2d(vertical, taps[tf.newaxis], [1, 1, 1, 1], "VALID")[0]

    return tf.cond(rho > 0.0, blur, lambda: tf.identity(image))


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
    size = tf.shape(image)[:2]
    scale = degradation["scale"]
    small_size = tf.maximum(
        tf.cast(tf.round(tf.cast(size, tf.float32) / scale), tf.int32), 1
    )
    resized = tf.reduce_any(tf.not_equal(small_size, size))

    blurred = gaussian_blur(image, degradation["blur"])
    # Skipping the resize at s = 1 keeps the identity setting exact (a same-size bicubic
    # resample is not bit-exact).
    small = tf.cond(
        resized,
        lambda: tf.image.resize(blurred, small_size, "bicubic", antialias=True),
        lambda: blurred,
    )
    noise = tf.random.stateless_normal(tf.shape(small), seed, stddev=degradation["noise"] / 255.0)
    compressed = _compress(small + noise, degradation["jpeg_quality"])
    restored = tf.cond(
        resized,
        lambda: tf.image.resize(compressed, size, "bicubic"),
        lambda: compressed,
    )
    restored = tf.clip_by_value(restored, 0.0, 1.0)
    restored.set_shape(image.shape)
    return restored
