"""Synthetic-pose guides: a guide made from the target photo itself, with its exact flow.

The guide is the target under a random smooth warp plus a photometric change (docs/DESIGN.md,
beyond the paper). Construction, in pixel coordinates with `c` the image centre:

    Psi(p) = c + z R (p + d(p) - c) + t        guide pixel p -> target position
    guide  = target sampled at Psi             (coordinates clamped: edge pixels repeat
                                                instead of black borders)
    Phi    = Psi^-1                            target pixel -> guide position

`z R, t` is a similarity (analytic inverse) and `d` a smooth displacement: a coarse grid of
random offsets, bicubic-upsampled. Its inverse solves `q + d(q) = y` by the fixed-point
iteration `q <- y - d(q)`, which contracts because the amplitude is bounded so that
`|grad d| < 1/2`. Landmarks are inverted exactly; the dense flow is inverted exactly on 16
points per control cell and its elastic part upsampled (measured at 256 px and the largest
allowed amplitude: flow at the landmarks within 0.025 px of the exact guide landmarks).
Everything is stateless-random from one `[2]` seed.
"""

from __future__ import annotations

import math

import tensorflow as tf

from gfrnet_tf.data.degrade import resize_separable
from gfrnet_tf.errors import BadConfigError
from gfrnet_tf.ops import normalize_points, resample

# The flow is solved exactly on this many points per elastic control cell, then upsampled.
_SAMPLES_PER_CELL = 16


def default_pose_settings():
    """Warp and photometric ranges (dict of Python numbers; `input.synthetic_pose` in configs).

    Sizes are fractions of the image side, so 64 px tests and 256 px training agree.
    """
    return {
        "max_rotation_degrees": 10.0,
        "zoom": (0.92, 1.08),
        "max_shift": 0.04,
        "elastic_amplitude": 0.02,
        "elastic_grid": 4,
        "photometric": True,
        "gamma": (0.75, 1.35),
        "color_gain": 0.12,
        "light_gradient": 0.3,
    }


def check_pose_settings(settings, source="input.synthetic_pose"):
    """Raises `BadConfigError` where the warp could fold over or the face leave the frame."""
    # The steepest slope of the upsampled offsets is about amplitude * 2 * grid (peak to peak
    # over one cell); it must stay below 1/2 for the fixed-point inverse to converge fast.
    slope = 2.0 * settings["elastic_amplitude"] * settings["elastic_grid"]
    if not 0.0 <= slope < 0.5:
        raise BadConfigError(
            f"{source}.elastic_amplitude", f"2 * amplitude * grid = {slope:.2f}, must be < 0.5"
        )
    if settings["elastic_grid"] < 2:
        raise BadConfigError(f"{source}.elastic_grid", "needs at least 2 control points a side")
    low, high = settings["zoom"]
    if not 0.5 <= low <= high <= 2.0:
        raise BadConfigError(
            f"{source}.zoom", f"expected 0.5 <= low <= high <= 2, got {(low, high)}"
        )
    if (
        not 0.0 <= settings["max_rotation_degrees"] <= 45.0
        or not 0.0 <= settings["max_shift"] <= 0.25
    ):
        raise BadConfigError(source, "rotation must be within 45 degrees and shift within 0.25")


def _fixed_point_steps(settings):
    """Iterations for the inverse to get within 1e-4 of the displacement.

    The error shrinks by the slope of `d` per step; the slope estimate of
    `check_pose_settings` gets 2 extra steps for the bicubic overshoot it ignores.
    Defaults need 8 steps, the largest allowed amplitude 15.
    """
    slope = min(max(2.0 * settings["elastic_amplitude"] * settings["elastic_grid"], 1e-3), 0.5)
    return 2 + math.ceil(math.log(1e-4) / math.log(slope))


def _uniform(seed, low, high, shape=()):
    return tf.random.stateless_uniform(shape, seed, minval=low, maxval=high)


def draw_warp(seed, height, width, settings):
    """The random part of one warp: rotation angle, zoom, shift `[2]` px, coarse offsets px.

    Drawn with TensorFlow's own stateless kernels, outside any XLA cluster: XLA compiles
    the stateless random ops to other numbers than the CPU kernels.
    """
    seeds = tf.unstack(tf.random.experimental.stateless_split(seed, 4))
    side = tf.cast(tf.minimum(width, height), tf.float32)
    grid = settings["elastic_grid"]
    return {
        "angle": _uniform(seeds[0], -1.0, 1.0) * math.radians(settings["max_rotation_degrees"]),
        "zoom": _uniform(seeds[1], *settings["zoom"]),
        "shift": _uniform(seeds[2], -1.0, 1.0, [2]) * settings["max_shift"] * side,
        "coarse": _uniform(seeds[3], -1.0, 1.0, [grid, grid, 2])
        * (settings["elastic_amplitude"] * side),
    }


class PoseWarp:
    """One warp of an `height x width` image: forward `Psi` and inverse `Phi` on points.

    Built from `draw_warp`'s values (`PoseWarp.sample` draws them from a seed), so the
    deterministic rest can run inside one XLA cluster.
    """

    def __init__(self, draws, height, width, steps):
        size = tf.cast(tf.stack([width, height]), tf.float32)
        angle = draws["angle"]
        self.zoom = draws["zoom"]
        self.rotation = tf.reshape(
            tf.stack([tf.cos(angle), -tf.sin(angle), tf.sin(angle), tf.cos(angle)]), [2, 2]
        )
        self.shift = draws["shift"]
        self.centre = (size - 1.0) / 2.0
        # The bicubic upsampling of tf.image.resize (to 2e-7), as two GEMMs XLA compiles.
        self.displacement = resize_separable(draws["coarse"], height, width)[tf.newaxis]
        self.last_pixel = size - 1.0
        self.steps = steps

    @classmethod
    def sample(cls, seed, height, width, settings):
        """A random warp drawn from a `[2]` seed."""
        draws = draw_warp(seed, height, width, settings)
        return cls(draws, height, width, _fixed_point_steps(settings))

    def _offset(self, points):
        """`d` at `[N, 2]` pixel points, clamped to the image so it extends by its edge value."""
        clamped = tf.clip_by_value(points, 0.0, self.last_pixel)
        return resample(self.displacement, clamped[tf.newaxis])[0]

    def _similarity(self, points):
        # One [N, 2] x [2, 2] GEMM; matvec would broadcast R to N tiny batched matmuls
        # (measured 10 ms for the 256 px grid).
        rotated = tf.matmul(points - self.centre, self.rotation, transpose_b=True)
        return self.centre + self.zoom * rotated + self.shift

    def forward(self, points):
        """Psi: guide pixel points `[N, 2]` -> target pixel points."""
        return self._similarity(points + self._offset(points))

    def forward_grid(self, height, width):
        """Psi at every pixel centre `[H*W, 2]`; there `d` is the field itself, no resampling."""
        return self._similarity(_pixel_grid(height, width) + tf.reshape(self.displacement, [-1, 2]))

    def _similarity_inverse(self, points):
        # Row vectors times R is R^T applied to each: the inverse rotation.
        return tf.matmul(points - self.centre - self.shift, self.rotation) / self.zoom + self.centre

    def inverse(self, points):
        """Phi: target pixel points `[N, 2]` -> guide pixel points (fixed-point for `d`)."""
        target = self._similarity_inverse(points)
        # A while_loop, not a Python loop: one copy of the resample in the graph keeps
        # tracing and tf.data's graph optimisation fast.
        _, guess = tf.while_loop(
            lambda step, _: step < self.steps,
            lambda step, guess: (step + 1, target - self._offset(guess)),
            (tf.constant(0), target),
        )
        return guess

    def inverse_field(self, height, width, samples, landmarks):
        """Phi at every pixel `[H, W, 2]` and at `landmarks` `[N, 2]` (exact there).

        The field is solved on a `samples`-a-side grid and upsampled, in one inverse pass
        with the landmarks.

        Only the elastic part `Phi - S^-1` is upsampled (bicubic): it is as smooth as `d`,
        so a few samples per control cell resolve it, while the fixed-point iteration on
        every pixel would cost 16x more resamples at 256 px. The similarity is exact.
        """
        rows, cols = tf.minimum(height, samples), tf.minimum(width, samples)
        # Where tf.image.resize places coarse sample k: (k + 0.5) * H / h - 0.5.
        xs = (tf.range(cols, dtype=tf.float32) + 0.5) * tf.cast(width / cols, tf.float32) - 0.5
        ys = (tf.range(rows, dtype=tf.float32) + 0.5) * tf.cast(height / rows, tf.float32) - 0.5
        coarse = tf.reshape(tf.stack(tf.meshgrid(xs, ys), axis=-1), [-1, 2])
        solved = self.inverse(tf.concat([coarse, landmarks], axis=0))
        elastic = solved[: rows * cols] - self._similarity_inverse(coarse)
        elastic = resize_separable(tf.reshape(elastic, [rows, cols, 2]), height, width)
        grid = _pixel_grid(height, width)
        field = tf.reshape(self._similarity_inverse(grid), [height, width, 2]) + elastic
        return field, solved[rows * cols :]


def _pixel_grid(height, width):
    """All pixel centres `[H*W, 2]` as `(x, y)`, row-major like the image."""
    xs, ys = tf.meshgrid(tf.range(width, dtype=tf.float32), tf.range(height, dtype=tf.float32))
    return tf.reshape(tf.stack([xs, ys], axis=-1), [-1, 2])


def draw_light(seed, settings):
    """The random part of the photometric change: gamma, per-channel gain `[3]`, a gradient."""
    seeds = tf.unstack(tf.random.experimental.stateless_split(seed, 4))
    return {
        "gamma": _uniform(seeds[0], *settings["gamma"]),
        "gain": 1.0 + _uniform(seeds[1], -1.0, 1.0, [3]) * settings["color_gain"],
        "direction": _uniform(seeds[2], 0.0, 2.0 * math.pi),
        "strength": _uniform(seeds[3], 0.0, settings["light_gradient"]),
    }


def _relight(image, light, height, width):
    """Gamma, per-channel gain and a linear lighting gradient across the face."""
    xy = normalize_points(_pixel_grid(height, width), height, width)
    direction = light["direction"]
    along = xy[:, 0] * tf.cos(direction) + xy[:, 1] * tf.sin(direction)
    shading = tf.reshape(1.0 + light["strength"] * along, [height, width, 1])
    return tf.clip_by_value(tf.pow(image, light["gamma"]) * light["gain"] * shading, 0.0, 1.0)


def render_guide(image, landmarks, warp_draws, light_draws, steps, samples):
    """The deterministic part of `synthesize_guide`, given the draws (`light_draws` None:
    no photometric change) -> `(guide, guide_landmarks, flow)`. Plain graph code; the
    pipeline runs it compiled (`render_guide_xla`)."""
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    warp = PoseWarp(warp_draws, height, width, steps)
    source = tf.clip_by_value(warp.forward_grid(height, width), 0.0, warp.last_pixel)
    guide = tf.reshape(resample(image[tf.newaxis], source[tf.newaxis])[0], shape)
    if light_draws is not None:
        guide = _relight(guide, light_draws, height, width)
    field, guide_landmarks = warp.inverse_field(height, width, samples, landmarks)
    return guide, guide_landmarks, normalize_points(field, height, width)


# XLA fuses the resampler's index arithmetic, gathers and weighting, the fixed-point loop
# and the relighting: measured 3-4x less CPU per guide at 256 px than graph mode. One
# compilation per image size and settings; `reduce_retracing` keeps it to that.
render_guide_xla = tf.function(render_guide, jit_compile=True, reduce_retracing=True)


def synthesize_guide(image, landmarks, seed, settings):
    """Makes a guide from one float `[H, W, 3]` image in `[0, 1]` and its `[68, 2]` landmarks.

    Returns `(guide [H, W, 3], guide_landmarks [68, 2] px, flow [H, W, 2])`, the flow in
    normalised `(x, y)` guide coordinates per target pixel (WarpNet's `Phi` convention).
    """
    image = tf.convert_to_tensor(image, tf.float32)
    shape = tf.shape(image)
    warp_seed, light_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    warp_draws = draw_warp(warp_seed, shape[0], shape[1], settings)
    light_draws = draw_light(light_seed, settings) if settings["photometric"] else None
    guide, guide_landmarks, flow = render_guide_xla(
        image,
        tf.cast(landmarks, tf.float32),
        warp_draws,
        light_draws,
        _fixed_point_steps(settings),
        _SAMPLES_PER_CELL * settings["elastic_grid"],
    )
    guide.set_shape(image.shape)
    guide_landmarks.set_shape([None, 2])
    flow.set_shape(image.shape[:2].concatenate([2]))
    return guide, guide_landmarks, flow
