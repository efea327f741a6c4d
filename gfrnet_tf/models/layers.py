"""Building blocks shared by WarpNet, RecNet and the PatchGAN discriminator.

Layer order is conv -> norm -> activation (post-activation, as in the paper's
"conv-BN-ReLU"). Convolutions are initialised N(0, `init_stddev`) and BatchNorm gammas
N(1, `init_stddev`): 0.02 as in pix2pix, 0.04 in the official WarpNet code. A convolution
followed by BatchNorm has no bias (BN's beta replaces it); every other convolution has
one. BatchNorm uses PyTorch's defaults (momentum 0.1, i.e. Keras momentum 0.9, epsilon
1e-5) so the PyTorch twin in `benchmarks/` matches it exactly.

Inference (`training=False`) is Keras' by default: BatchNorm on its moving averages, no
dropout. The official GFRNet test script never puts Torch in evaluation mode, so there
BatchNorm normalises with the statistics of the test batch (one image) and dropout stays
on; `test_time_norm="per_image"` and `test_time_dropout=True` reproduce that, with ops
that export to SavedModel and builtin TFLite (no variable is updated at inference).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from gfrnet_tf.errors import BadConfigError

NORMS = ("batch", "instance", "none")
TEST_TIME_NORMS = ("moving", "per_image")
ENCODER_ACTIVATIONS = ("leaky_relu", "relu")
# How U-Net skip features enter the decoder: as the encoder's activation left them, or
# through ReLU (pix2pix: ReLU on the concatenation).
SKIP_ACTIVATIONS = ("encoder", "relu")
PIX2PIX_INIT_STDDEV = 0.02
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9
KERNEL_SIZE = 4
# pix2pix generator widths, capped at 512; the paper's own are in a supplement we do not
# have. The official WarpNet code (GFRNet_WarpNet, models/networks.py) goes to 1024.
PIX2PIX_WIDTHS = (64, 128, 256, 512, 512, 512, 512, 512)
OFFICIAL_WARPNET_WIDTHS = (64, 128, 256, 512, 1024, 1024, 1024, 1024)
# Output layers compute in float32 even under mixed precision (Keras' advice): a float16
# flow near |x| = 1 is only good to 1/2048, about 1/8 pixel at 256x256.
OUTPUT_DTYPE = "float32"


def conv_initializer(stddev=PIX2PIX_INIT_STDDEV):
    """Weight init N(0, stddev): 0.02 in pix2pix, 0.04 in the official WarpNet."""
    return keras.initializers.RandomNormal(mean=0.0, stddev=stddev)


def check_test_time_norm(mode, source):
    """Raise `BadConfigError` unless `mode` is one of `TEST_TIME_NORMS`."""
    check_choice(mode, TEST_TIME_NORMS, "test_time_norm", source)


def per_image_batch_norm(layer, x):
    """`layer` (a BatchNormalization) applied with each image's own statistics over H, W.

    What Torch's BatchNorm in training mode computes on a batch of one image, which is
    how the official test script runs; nothing is updated (moving averages stay), so it
    exports. Computed in float32, as Keras' BatchNormalization does under mixed precision.
    """
    values = tf.cast(x, tf.float32)
    mean, variance = tf.nn.moments(values, axes=[1, 2], keepdims=True)
    gamma = tf.cast(layer.gamma, tf.float32)
    beta = tf.cast(layer.beta, tf.float32)
    normalised = (values - mean) * tf.math.rsqrt(variance + layer.epsilon) * gamma + beta
    return tf.cast(normalised, x.dtype)


def inference_dropout(x, rate):
    """Dropout without a Keras seed generator (whose state variable TFLite cannot update):
    a stateful `RandomUniform`, a builtin TFLite op, at test time."""
    keep = tf.cast(tf.random.uniform(tf.shape(x)) >= rate, x.dtype)
    return x * keep / tf.cast(1.0 - rate, x.dtype)


def check_choice(value, choices, key, source):
    """Raise `BadConfigError` unless `value` is one of `choices` (`key` names the setting)."""
    if value not in choices:
        raise BadConfigError(source, f"{key} must be one of {choices}, got {value!r}")


def check_norm(norm, source):
    """Raise `BadConfigError` unless `norm` is one of `NORMS`."""
    check_choice(norm, NORMS, "norm", source)


def check_network(widths, norm, source):
    """Raise `BadConfigError` for an empty `widths` or an unknown `norm` of a whole network."""
    check_norm(norm, source)
    if not widths:
        raise BadConfigError(source, "widths must name at least one layer")


def make_norm(norm, dtype, init_stddev=PIX2PIX_INIT_STDDEV):
    """A normalisation layer for `norm` ("batch", "instance"), or None for "none"."""
    if norm == "batch":
        return keras.layers.BatchNormalization(
            momentum=BN_MOMENTUM,
            epsilon=BN_EPSILON,
            gamma_initializer=keras.initializers.RandomNormal(mean=1.0, stddev=init_stddev),
            dtype=dtype,
            name="norm",
        )
    if norm == "instance":
        # groups=-1: one group per channel, i.e. instance normalisation with affine terms.
        return keras.layers.GroupNormalization(
            groups=-1, epsilon=BN_EPSILON, dtype=dtype, name="norm"
        )
    return None


def check_spatial_size(source, input_shape, divisor, what):
    """Raise `BadConfigError` when a static H or W of `input_shape` is not a multiple of
    `divisor`."""
    height, width = input_shape[1], input_shape[2]
    bad = [size for size in (height, width) if size is not None and size % divisor]
    if bad:
        raise BadConfigError(
            source,
            f"input size {height}x{width} is not divisible by {divisor} ({what}); "
            f"use a height and width that are multiples of {divisor}",
        )


def make_activation(activation, dtype):
    """LeakyReLU(0.2) for "leaky_relu" (pix2pix slope, not Keras' 0.3 default), else a Keras
    activation."""
    if activation is None:
        return None
    if activation == "leaky_relu":
        return keras.layers.LeakyReLU(negative_slope=0.2, dtype=dtype, name="act")
    return keras.layers.Activation(activation, dtype=dtype, name="act")


@keras.saving.register_keras_serializable(package="gfrnet_tf")
class ConvBlock(keras.layers.Layer):
    """4x4 convolution (or transposed convolution) -> optional norm -> optional dropout ->
    activation.

    `transpose=True` upsamples by `strides` (decoder), otherwise the conv downsamples by it.
    `test_time_norm` / `test_time_dropout`: what `training=False` does (module docstring).
    Without `explicit_padding` the conv pads "same": for even sizes Keras pads a 4x4
    stride-2 conv 1 pixel before and 1 after, exactly PyTorch's `padding=1`. The
    discriminator passes `explicit_padding=1` ("valid" conv after zero padding) to get
    pix2pix's sizes at stride 1 too, where "same" would pad 1 before and 2 after.
    """

    def __init__(
        self,
        filters,
        strides=2,
        transpose=False,
        norm="none",
        activation="leaky_relu",
        dropout=0.0,
        explicit_padding=0,
        init_stddev=PIX2PIX_INIT_STDDEV,
        test_time_norm="moving",
        test_time_dropout=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_norm(norm, self.name)
        check_test_time_norm(test_time_norm, self.name)
        self.filters = filters
        self.strides = strides
        self.transpose = transpose
        self.norm = norm
        self.activation = activation
        self.dropout = dropout
        self.explicit_padding = explicit_padding
        self.init_stddev = init_stddev
        self.test_time_norm = test_time_norm
        self.test_time_dropout = test_time_dropout
        # Sub-layers follow this block's dtype policy (Keras 3 does not propagate it).
        dtype = self.dtype_policy
        conv_class = keras.layers.Conv2DTranspose if transpose else keras.layers.Conv2D
        self.pad = (
            keras.layers.ZeroPadding2D(explicit_padding, dtype=dtype, name="pad")
            if explicit_padding
            else None
        )
        self.conv = conv_class(
            filters,
            KERNEL_SIZE,
            strides=strides,
            padding="valid" if explicit_padding else "same",
            use_bias=norm != "batch",
            kernel_initializer=conv_initializer(init_stddev),
            dtype=dtype,
            name="conv",
        )
        self.norm_layer = make_norm(norm, dtype, init_stddev)
        self.dropout_layer = (
            keras.layers.Dropout(dropout, dtype=dtype, name="dropout") if dropout else None
        )
        self.activation_layer = make_activation(activation, dtype)

    def build(self, input_shape):
        shape = input_shape
        if self.pad is not None:
            self.pad.build(shape)
            shape = self.pad.compute_output_shape(shape)
        self.conv.build(shape)
        if self.norm_layer is not None:
            self.norm_layer.build(self.conv.compute_output_shape(shape))

    def call(self, inputs, training=None):
        x = inputs if self.pad is None else self.pad(inputs)
        x = self.conv(x)
        if self.norm_layer is not None:
            if not training and self.norm == "batch" and self.test_time_norm == "per_image":
                x = per_image_batch_norm(self.norm_layer, x)
            else:
                x = self.norm_layer(x, training=training)
        if self.dropout_layer is not None:
            if not training and self.test_time_dropout:
                x = inference_dropout(x, self.dropout)
            else:
                x = self.dropout_layer(x, training=training)
        return x if self.activation_layer is None else self.activation_layer(x)

    def compute_output_shape(self, input_shape):
        shape = input_shape if self.pad is None else self.pad.compute_output_shape(input_shape)
        return self.conv.compute_output_shape(shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            strides=self.strides,
            transpose=self.transpose,
            norm=self.norm,
            activation=self.activation,
            dropout=self.dropout,
            explicit_padding=self.explicit_padding,
            init_stddev=self.init_stddev,
            test_time_norm=self.test_time_norm,
            test_time_dropout=self.test_time_dropout,
        )
        return config


@keras.saving.register_keras_serializable(package="gfrnet_tf")
class EncoderDecoder(keras.layers.Layer):
    """The generator body shared by WarpNet and RecNet (GFRNet §3.1, pix2pix widths).

    Encoder: `len(widths)` 4x4 stride-2 convs with `encoder_activation` (the innermost one
    with `innermost_activation`); decoder: as many 4x4 stride-2 transposed convs with ReLU,
    mirroring the widths, the last one producing `out_channels` through `out_activation`.
    The first encoder layer and the last decoder layer have no norm (paper §3.1), and
    without `innermost_norm` neither has the innermost encoder layer: with batch 1 its
    output is 1x1 at 256x256 and depth 8, where BatchNorm would normalise a single value
    to beta (the official WarpNet, GFRNet_WarpNet models/networks.py:107-108, and pix2pix
    drop it). With `skips`, encoder output i is concatenated to decoder output L-i (U-Net):
    as the encoder's activation left it (`skip_activation="encoder"`), or through ReLU
    (`"relu"`: pix2pix applies ReLU to the whole concatenation, its decoder half already
    is). The first `dropout_layers` decoder layers get `dropout`. `init_stddev`,
    `test_time_norm` and `test_time_dropout` go to every block (`ConvBlock`).

    The defaults are the project's reading; docs/FIDELITY.md ("generator blocks") has the
    official code's (ReLU into the innermost layer) and the paper's literal
    "convolution-BatchNorm-ReLU" (ReLU encoder, BatchNorm on the innermost layer too).
    """

    def __init__(
        self,
        widths,
        norm,
        out_channels,
        out_activation="tanh",
        skips=False,
        dropout=0.0,
        dropout_layers=0,
        init_stddev=PIX2PIX_INIT_STDDEV,
        test_time_norm="moving",
        test_time_dropout=False,
        encoder_activation="leaky_relu",
        innermost_activation="leaky_relu",
        innermost_norm=False,
        skip_activation="encoder",
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_network(widths, norm, self.name)
        check_choice(encoder_activation, ENCODER_ACTIVATIONS, "encoder_activation", self.name)
        check_choice(innermost_activation, ENCODER_ACTIVATIONS, "innermost_activation", self.name)
        check_choice(skip_activation, SKIP_ACTIVATIONS, "skip_activation", self.name)
        self.widths = tuple(widths)
        self.norm = norm
        self.out_channels = out_channels
        self.out_activation = out_activation
        self.skips = skips
        self.dropout = dropout
        self.dropout_layers = dropout_layers
        self.init_stddev = init_stddev
        self.test_time_norm = test_time_norm
        self.test_time_dropout = test_time_dropout
        self.encoder_activation = encoder_activation
        self.innermost_activation = innermost_activation
        self.innermost_norm = bool(innermost_norm)
        self.skip_activation = skip_activation
        block_options = dict(
            init_stddev=init_stddev,
            test_time_norm=test_time_norm,
            test_time_dropout=test_time_dropout,
        )
        depth = len(self.widths)
        innermost = depth - 1
        # Norm on every encoder layer but the first, and the innermost only with innermost_norm.
        self.encoder = [
            ConvBlock(
                width,
                norm=norm if 0 < i < innermost + self.innermost_norm else "none",
                activation=innermost_activation if i == innermost else encoder_activation,
                dtype=self.dtype_policy,
                name=f"down_{i}",
                **block_options,
            )
            for i, width in enumerate(self.widths)
        ]
        # Decoder layer j outputs the width of encoder layer depth-2-j (mirror image).
        self.decoder = [
            ConvBlock(
                width,
                transpose=True,
                norm=norm,
                activation="relu",
                dropout=dropout if j < dropout_layers else 0.0,
                dtype=self.dtype_policy,
                name=f"up_{j}",
                **block_options,
            )
            for j, width in enumerate(reversed(self.widths[:-1]))
        ]
        self.decoder.append(
            ConvBlock(
                out_channels,
                transpose=True,
                activation=out_activation,
                dtype=OUTPUT_DTYPE,
                name=f"up_{depth - 1}",
                **block_options,
            )
        )

    @property
    def depth(self):
        return len(self.widths)

    def build(self, input_shape):
        check_spatial_size(
            self.name, input_shape, 2**self.depth, f"2**depth, depth = len(widths) = {self.depth}"
        )
        shape = tuple(input_shape)
        encoder_shapes = []
        for block in self.encoder:
            block.build(shape)
            shape = tuple(block.compute_output_shape(shape))
            encoder_shapes.append(shape)
        for j, block in enumerate(self.decoder):
            if self.skips and j > 0:
                shape = shape[:-1] + (shape[-1] + encoder_shapes[-1 - j][-1],)
            block.build(shape)
            shape = tuple(block.compute_output_shape(shape))

    def call(self, inputs, training=None):
        features = []
        x = inputs
        for block in self.encoder:
            x = block(x, training=training)
            features.append(x)
        for j, block in enumerate(self.decoder):
            if self.skips and j > 0:
                skip = features[-1 - j]
                if self.skip_activation == "relu":  # ReLU(LeakyReLU(e)) = ReLU(e)
                    skip = keras.ops.relu(skip)
                x = keras.ops.concatenate([skip, x], axis=-1)
            x = block(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.out_channels,)

    def get_config(self):
        config = super().get_config()
        config.update(
            widths=list(self.widths),
            norm=self.norm,
            out_channels=self.out_channels,
            out_activation=self.out_activation,
            skips=self.skips,
            dropout=self.dropout,
            dropout_layers=self.dropout_layers,
            init_stddev=self.init_stddev,
            test_time_norm=self.test_time_norm,
            test_time_dropout=self.test_time_dropout,
            encoder_activation=self.encoder_activation,
            innermost_activation=self.innermost_activation,
            innermost_norm=self.innermost_norm,
            skip_activation=self.skip_activation,
        )
        return config
