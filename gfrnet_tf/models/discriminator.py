"""The pix2pix PatchGAN discriminator, used as GFRNet's global and local discriminator."""

from __future__ import annotations

import keras

from gfrnet_tf.errors import BadConfigError
from gfrnet_tf.models.layers import OUTPUT_DTYPE, PIX2PIX_INIT_STDDEV, ConvBlock, check_network

PATCHGAN_WIDTHS = (64, 128, 256, 512)


@keras.saving.register_keras_serializable(package="gfrnet_tf")
class PatchDiscriminator(keras.Model):
    """`concat(I_d, I_g, image)` `[B, H, W, C]` -> real/fake logits `[B, h, w, 1]` (no sigmoid).

    pix2pix `NLayerDiscriminator`: 4x4 convs, stride 2 for all `widths` but the last,
    which has stride 1, then a stride-1 conv to one logit; LeakyReLU(0.2), norm on all
    but the first layer. Every conv pads 1 pixel on each side and then convolves "valid",
    exactly like PyTorch's `padding=1`, so with the default widths each logit sees a 70x70
    patch and a 256x256 input gives a 30x30 map (Keras "same" would give 32x32 and a
    different receptive field). Weights are initialised N(0, `init_stddev`).
    """

    def __init__(
        self, widths=PATCHGAN_WIDTHS, norm="batch", init_stddev=PIX2PIX_INIT_STDDEV, **kwargs
    ):
        super().__init__(**kwargs)
        check_network(widths, norm, self.name)
        self.widths = tuple(widths)
        self.norm = norm
        self.init_stddev = init_stddev
        last = len(self.widths) - 1
        self.blocks = [
            ConvBlock(
                width,
                strides=1 if i == last else 2,
                norm="none" if i == 0 else norm,
                explicit_padding=1,
                init_stddev=init_stddev,
                dtype=self.dtype_policy,
                name=f"conv_{i}",
            )
            for i, width in enumerate(self.widths)
        ]
        self.blocks.append(
            ConvBlock(
                1,
                strides=1,
                activation=None,
                explicit_padding=1,
                init_stddev=init_stddev,
                dtype=OUTPUT_DTYPE,
                name="logits",
            )
        )

    def build(self, input_shape):
        if any(size is not None and self._logit_size(size) < 1 for size in input_shape[1:3]):
            raise BadConfigError(
                self.name,
                f"input size {input_shape[1]}x{input_shape[2]} is too small for "
                f"{len(self.widths)} layers: the logit map would be empty",
            )
        shape = tuple(input_shape)
        for block in self.blocks:
            block.build(shape)
            shape = block.compute_output_shape(shape)

    def _logit_size(self, size):
        """Logit-map side for an input side, by PyTorch's conv size rule with padding 1."""
        for block in self.blocks:
            size = (size + 2 - 4) // block.strides + 1
        return size

    def call(self, inputs, training=None):
        x = inputs
        for block in self.blocks:
            x = block(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        for block in self.blocks:
            shape = block.compute_output_shape(shape)
        return shape

    def get_config(self):
        config = super().get_config()
        config.update(widths=list(self.widths), norm=self.norm, init_stddev=self.init_stddev)
        return config
