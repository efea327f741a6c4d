"""PyTorch twin of gfrnet_tf's networks, for parity tests and honest speed comparisons.

The same WarpNet, RecNet and PatchDiscriminator as `gfrnet_tf.models`, written the way a
PyTorch user would (NCHW, `padding=1` convolutions, `grid_sample` for the warp), plus
`transfer_weights` to copy a Keras model's weights into its twin and `twin_of` to build
both in one call. Padding needs no special handling: for even sizes Keras "same" pads a
4x4 stride-2 conv 1 pixel before and 1 after (PyTorch `padding=1`), and Keras' "same"
4x4 stride-2 transposed conv equals `ConvTranspose2d(k=4, s=2, padding=1)`; the parity
test checks both. Both frameworks compute cross-correlations and their transposes, so
kernels are only transposed, never flipped.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from gfrnet_tf.models import PatchDiscriminator, RecNet, WarpNet
from gfrnet_tf.models.discriminator import PATCHGAN_WIDTHS
from gfrnet_tf.models.layers import BN_EPSILON, BN_MOMENTUM, KERNEL_SIZE, PIX2PIX_WIDTHS


def _norm(norm, channels):
    if norm == "batch":
        # Keras momentum m keeps m of the old statistic; PyTorch's momentum is the new share.
        return nn.BatchNorm2d(channels, eps=BN_EPSILON, momentum=1.0 - BN_MOMENTUM)
    if norm == "instance":
        return nn.GroupNorm(channels, channels, eps=BN_EPSILON)
    return None


_ACTIVATIONS = {
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    None: nn.Identity,
}


class TorchConvBlock(nn.Module):
    """4x4 conv or transposed conv (padding 1) -> norm -> dropout -> activation."""

    def __init__(
        self,
        cin,
        cout,
        strides=2,
        transpose=False,
        norm="none",
        activation="leaky_relu",
        dropout=0.0,
    ):
        super().__init__()
        conv_class = nn.ConvTranspose2d if transpose else nn.Conv2d
        self.conv = conv_class(
            cin, cout, KERNEL_SIZE, stride=strides, padding=1, bias=norm != "batch"
        )
        self.norm = _norm(norm, cout)
        self.dropout = nn.Dropout(dropout) if dropout else None
        self.activation = _ACTIVATIONS[activation]()

    def forward(self, x):
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        if self.dropout is not None:
            x = self.dropout(x)
        return self.activation(x)


class TorchEncoderDecoder(nn.Module):
    """`gfrnet_tf.models.layers.EncoderDecoder` in PyTorch (same layer list and skip order)."""

    def __init__(
        self, in_channels, widths, norm, out_channels, skips=False, dropout=0.0, dropout_layers=0
    ):
        super().__init__()
        depth = len(widths)
        self.skips = skips
        self.encoder = nn.ModuleList()
        cin = in_channels
        for i, width in enumerate(widths):
            self.encoder.append(
                TorchConvBlock(cin, width, norm=norm if 0 < i < depth - 1 else "none")
            )
            cin = width
        self.decoder = nn.ModuleList()
        for j, width in enumerate(reversed(widths[:-1])):
            self.decoder.append(
                TorchConvBlock(
                    cin * 2 if skips and j > 0 else cin,
                    width,
                    transpose=True,
                    norm=norm,
                    activation="relu",
                    dropout=dropout if j < dropout_layers else 0.0,
                )
            )
            cin = width
        last_in = cin * 2 if skips and depth > 1 else cin
        self.decoder.append(
            TorchConvBlock(last_in, out_channels, transpose=True, activation="tanh")
        )

    def forward(self, x):
        features = []
        for block in self.encoder:
            x = block(x)
            features.append(x)
        for j, block in enumerate(self.decoder):
            if self.skips and j > 0:
                x = torch.cat([features[-1 - j], x], dim=1)
            x = block(x)
        return x


def identity_grid(height, width):
    """`[1, H, W, 2]` normalised `(x, y)` mesh grid, `grid_sample`'s align-corners layout."""
    ys, xs = torch.meshgrid(
        torch.linspace(-1.0, 1.0, height), torch.linspace(-1.0, 1.0, width), indexing="ij"
    )
    return torch.stack([xs, ys], dim=-1)[None]


class TorchWarpNet(nn.Module):
    """NCHW `cat(I_d, I_g)` -> flow `[B, H, W, 2]` (NHWC, ready for `grid_sample`)."""

    def __init__(
        self,
        in_channels=6,
        widths=PIX2PIX_WIDTHS,
        norm="batch",
        flow_mode="offset",
        offset_scale=1.0,
    ):
        super().__init__()
        self.flow_mode = flow_mode
        self.offset_scale = offset_scale
        self.body = TorchEncoderDecoder(in_channels, widths, norm, out_channels=2)

    def forward(self, x):
        flow = self.body(x).permute(0, 2, 3, 1)
        if self.flow_mode == "absolute":
            return flow
        return identity_grid(flow.shape[1], flow.shape[2]).to(flow) + self.offset_scale * flow


class TorchRecNet(nn.Module):
    """NCHW `cat(I_d, I_w)` -> restored NCHW image in `[-1, 1]` (U-Net, pix2pix dropout)."""

    def __init__(
        self,
        in_channels=6,
        widths=PIX2PIX_WIDTHS,
        norm="batch",
        dropout=0.5,
        dropout_layers=3,
        out_channels=3,
    ):
        super().__init__()
        self.body = TorchEncoderDecoder(
            in_channels,
            widths,
            norm,
            out_channels,
            skips=True,
            dropout=dropout,
            dropout_layers=dropout_layers,
        )

    def forward(self, x):
        return self.body(x)


class TorchPatchDiscriminator(nn.Module):
    """pix2pix `NLayerDiscriminator`: NCHW input -> NCHW logit map."""

    def __init__(self, in_channels=9, widths=PATCHGAN_WIDTHS, norm="batch"):
        super().__init__()
        last = len(widths) - 1
        blocks, cin = [], in_channels
        for i, width in enumerate(widths):
            blocks.append(
                TorchConvBlock(
                    cin, width, strides=1 if i == last else 2, norm="none" if i == 0 else norm
                )
            )
            cin = width
        blocks.append(TorchConvBlock(cin, 1, strides=1, activation=None))
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x):
        return self.blocks(x)


class TorchGFRNet(nn.Module):
    """Inference path: (degraded, guide) NCHW -> (flow NHWC, warped guide NCHW, restored NCHW)."""

    def __init__(self, warpnet: TorchWarpNet, recnet: TorchRecNet):
        super().__init__()
        self.warpnet = warpnet
        self.recnet = recnet

    def forward(self, degraded, guide):
        flow = self.warpnet(torch.cat([degraded, guide], dim=1))
        warped = F.grid_sample(
            guide, flow, mode="bilinear", padding_mode="zeros", align_corners=True
        )
        restored = self.recnet(torch.cat([degraded, warped], dim=1))
        return flow, warped, restored


def _keras_blocks(model):
    if isinstance(model, PatchDiscriminator):
        return model.blocks
    return model.body.encoder + model.body.decoder


def _torch_blocks(module):
    if isinstance(module, TorchPatchDiscriminator):
        return list(module.blocks)
    return list(module.body.encoder) + list(module.body.decoder)


def _tensor(value):
    return torch.from_numpy(value.numpy().copy())


def transfer_weights(keras_model, torch_model):
    """Copy a built Keras WarpNet/RecNet/PatchDiscriminator into its PyTorch twin, in place.

    Conv2D kernels HWIO and Conv2DTranspose kernels HWOI both become PyTorch's layout by
    the same permutation (3, 2, 0, 1): OIHW for Conv2d, IOHW for ConvTranspose2d.
    BatchNorm moves gamma, beta and the moving statistics; GroupNorm gamma and beta.
    """
    keras_blocks, torch_blocks = _keras_blocks(keras_model), _torch_blocks(torch_model)
    if len(keras_blocks) != len(torch_blocks):
        raise ValueError(f"{len(keras_blocks)} Keras blocks vs {len(torch_blocks)} PyTorch blocks")
    with torch.no_grad():
        for kblock, tblock in zip(keras_blocks, torch_blocks):
            kernel = _tensor(kblock.conv.kernel).permute(3, 2, 0, 1)
            if kernel.shape != tblock.conv.weight.shape:
                raise ValueError(
                    f"{kblock.name}: kernel {tuple(kernel.shape)} "
                    f"vs {tuple(tblock.conv.weight.shape)}"
                )
            tblock.conv.weight.copy_(kernel)
            if tblock.conv.bias is not None:
                tblock.conv.bias.copy_(_tensor(kblock.conv.bias))
            if tblock.norm is not None:
                tblock.norm.weight.copy_(_tensor(kblock.norm_layer.gamma))
                tblock.norm.bias.copy_(_tensor(kblock.norm_layer.beta))
            if isinstance(tblock.norm, nn.BatchNorm2d):
                tblock.norm.running_mean.copy_(_tensor(kblock.norm_layer.moving_mean))
                tblock.norm.running_var.copy_(_tensor(kblock.norm_layer.moving_variance))


def twin_of(keras_model):
    """A PyTorch twin with the Keras model's config and weights (the Keras model must be built)."""
    in_channels = _keras_blocks(keras_model)[0].conv.kernel.shape[2]
    config = keras_model.get_config()
    widths, norm = tuple(config["widths"]), config["norm"]
    if isinstance(keras_model, WarpNet):
        twin = TorchWarpNet(in_channels, widths, norm, config["flow_mode"], config["offset_scale"])
    elif isinstance(keras_model, RecNet):
        twin = TorchRecNet(
            in_channels,
            widths,
            norm,
            config["dropout"],
            config["dropout_layers"],
            config["out_channels"],
        )
    elif isinstance(keras_model, PatchDiscriminator):
        twin = TorchPatchDiscriminator(in_channels, widths, norm)
    else:
        raise TypeError(f"no PyTorch twin for {type(keras_model).__name__}")
    transfer_weights(keras_model, twin)
    return twin
