"""RecNet: the U-Net that restores the degraded face from itself and the warped guide."""

from __future__ import annotations

import keras

from gfrnet_tf.models.layers import PIX2PIX_INIT_STDDEV, PIX2PIX_WIDTHS, EncoderDecoder


@keras.saving.register_keras_serializable(package="gfrnet_tf")
class RecNet(keras.Model):
    """`concat(I_d, I_w)` `[B, H, W, C]` -> restored face `[B, H, W, out_channels]`: `tanh`,
    `[-1, 1]` (`out_activation`; "sigmoid" gives `[0, 1]`, the official code's range).

    The WarpNet encoder-decoder plus U-Net skips (encoder layer i -> decoder layer L-i,
    GFRNet §3.1 "Reconstruction Subnetwork"). H and W must be multiples of
    `2**len(widths)`. Any number of input channels works, so the -WG ablation can feed
    `I_d` alone.

    `dropout` on the first `dropout_layers` decoder layers is pix2pix's U-Net, not the
    paper (which names no dropout); `dropout=0` switches it off. It is active with
    `training=True`, and at inference too with `test_time_dropout` (the official test
    script never leaves Torch's training mode). `init_stddev`, `test_time_norm` and the
    blocks' form (`encoder_activation`, `innermost_activation`, `innermost_norm`,
    `skip_activation`): see `gfrnet_tf.models.layers.EncoderDecoder`.
    """

    def __init__(
        self,
        widths=PIX2PIX_WIDTHS,
        norm="batch",
        dropout=0.5,
        dropout_layers=3,
        out_channels=3,
        init_stddev=PIX2PIX_INIT_STDDEV,
        test_time_norm="moving",
        test_time_dropout=False,
        out_activation="tanh",
        encoder_activation="leaky_relu",
        innermost_activation="leaky_relu",
        innermost_norm=False,
        skip_activation="encoder",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.widths = tuple(widths)
        self.norm = norm
        self.dropout = dropout
        self.dropout_layers = dropout_layers
        self.out_channels = out_channels
        self.init_stddev = init_stddev
        self.test_time_norm = test_time_norm
        self.test_time_dropout = test_time_dropout
        self.out_activation = out_activation
        self.encoder_activation = encoder_activation
        self.innermost_activation = innermost_activation
        self.innermost_norm = innermost_norm
        self.skip_activation = skip_activation
        self.body = EncoderDecoder(
            self.widths,
            norm,
            out_channels=out_channels,
            out_activation=out_activation,
            skips=True,
            dropout=dropout,
            dropout_layers=dropout_layers,
            init_stddev=init_stddev,
            test_time_norm=test_time_norm,
            test_time_dropout=test_time_dropout,
            encoder_activation=encoder_activation,
            innermost_activation=innermost_activation,
            innermost_norm=innermost_norm,
            skip_activation=skip_activation,
            dtype=self.dtype_policy,
            name=f"{self.name}_body",
        )

    def build(self, input_shape):
        self.body.build(input_shape)

    def call(self, inputs, training=None):
        return self.body(inputs, training=training)

    def compute_output_shape(self, input_shape):
        return self.body.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            widths=list(self.widths),
            norm=self.norm,
            dropout=self.dropout,
            dropout_layers=self.dropout_layers,
            out_channels=self.out_channels,
            init_stddev=self.init_stddev,
            test_time_norm=self.test_time_norm,
            test_time_dropout=self.test_time_dropout,
            out_activation=self.out_activation,
            encoder_activation=self.encoder_activation,
            innermost_activation=self.innermost_activation,
            innermost_norm=self.innermost_norm,
            skip_activation=self.skip_activation,
        )
        return config
