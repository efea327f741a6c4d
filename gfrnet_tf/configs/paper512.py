"""The `paper` preset with the pix2pix widths capped at 512: a lighter network (WarpNet +
RecNet 94 M weights instead of 291 M), otherwise the paper's settings."""

from gfrnet_tf.configs import paper
from gfrnet_tf.models.layers import PIX2PIX_WIDTHS


def get_config():
    config = paper.get_config()
    config.model.widths = PIX2PIX_WIDTHS
    return config
