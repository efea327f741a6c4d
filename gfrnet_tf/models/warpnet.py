"""WarpNet: predicts the flow that warps the guide into the pose of the degraded face."""

from __future__ import annotations

import keras

from gfrnet_tf.errors import BadConfigError
from gfrnet_tf.models.layers import PIX2PIX_INIT_STDDEV, PIX2PIX_WIDTHS, EncoderDecoder
from gfrnet_tf.ops import identity_grid

FLOW_MODES = ("absolute", "offset")


@keras.saving.register_keras_serializable(package="gfrnet_tf")
class WarpNet(keras.Model):
    """`concat(I_d, I_g)` `[B, H, W, 6]` -> flow `Phi` `[B, H, W, 2]`, normalised `(x, y)`.

    Encoder-decoder without skips (GFRNet §3.1); H and W must be multiples of
    `2**len(widths)`. `flow_mode="absolute"`: the tanh output is `Phi`, so the network
    must learn the mesh grid itself. `flow_mode="offset"` (default): `Phi = identity +
    offset_scale * tanh(output)`, so an untrained WarpNet already starts near the identity
    warp; `Phi` may then leave `[-1, 1]`, where the resampler samples zeros. Eq. 1-3 and
    both public codes use "absolute" (docs/FIDELITY.md has the measured difference).
    `init_stddev` (official code: 0.04) and `test_time_norm` go to every layer;
    `encoder_activation`, `innermost_activation` and `innermost_norm` choose the blocks'
    form (`gfrnet_tf.models.layers.EncoderDecoder`).
    """

    def __init__(
        self,
        widths=PIX2PIX_WIDTHS,
        norm="batch",
        flow_mode="offset",
        offset_scale=1.0,
        init_stddev=PIX2PIX_INIT_STDDEV,
        test_time_norm="moving",
        encoder_activation="leaky_relu",
        innermost_activation="leaky_relu",
        innermost_norm=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if flow_mode not in FLOW_MODES:
            raise BadConfigError(
                self.name, f"flow_mode must be one of {FLOW_MODES}, got {flow_mode!r}"
            )
        self.widths = tuple(widths)
        self.norm = norm
        self.flow_mode = flow_mode
        self.offset_scale = offset_scale
        self.init_stddev = init_stddev
        self.test_time_norm = test_time_norm
        self.encoder_activation = encoder_activation
        self.innermost_activation = innermost_activation
        self.innermost_norm = innermost_norm
        self.body = EncoderDecoder(
            self.widths,
            norm,
            out_channels=2,
            out_activation="tanh",
            init_stddev=init_stddev,
            test_time_norm=test_time_norm,
            encoder_activation=encoder_activation,
            innermost_activation=innermost_activation,
            innermost_norm=innermost_norm,
            dtype=self.dtype_policy,
            name=f"{self.name}_body",
        )

    def build(self, input_shape):
        self.body.build(input_shape)

    def call(self, inputs, training=None):
        flow = self.body(inputs, training=training)
        if self.flow_mode == "absolute":
            return flow
        shape = keras.ops.shape(flow)
        return identity_grid(shape[1], shape[2], flow.dtype) + self.offset_scale * flow

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (2,)

    def get_config(self):
        config = super().get_config()
        config.update(
            widths=list(self.widths),
            norm=self.norm,
            flow_mode=self.flow_mode,
            offset_scale=self.offset_scale,
            init_stddev=self.init_stddev,
            test_time_norm=self.test_time_norm,
            encoder_activation=self.encoder_activation,
            innermost_activation=self.innermost_activation,
            innermost_norm=self.innermost_norm,
        )
        return config
