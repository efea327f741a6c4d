"""The `paper` preset with the official code's readings where it differs from the paper's
text: its loss normalisation (`MSELoss` means, `loss_reduction="official"`) and the
degradation ranges of the official WarpNet's data loader (GFRNet_WarpNet
data/facefh_dataset.py at ff10f06).

That loader applies each degradation with a probability, which the value sets below
encode by repetition (each set is sampled uniformly; "none" is blur 0, scale 1, noise 0,
JPEG quality 0 = lossless):

- blur: `randint(20, 41) / 10`, applied only when <= 2.5: 16 x none, 2.0 to 2.5;
- scale: `randint(10, 90) / 10`, applied only when <= 8: 10 x none, 1.0 to 8.0;
- noise: `randint(5, 40)` (0-255), applied only when <= 15: 25 x none, 5 to 15;
- JPEG: `randint(50, 80)`, applied only when < 70: 11 x none, 50 to 69.
"""

from gfrnet_tf.configs import paper


def _tenths(first, last):
    """`first:0.1:last` (integers given in tenths) as rounded floats."""
    return tuple(round(k / 10, 1) for k in range(first, last + 1))


def official_degradation_sets():
    """The official WarpNet's degradation ranges as value sets (module docstring)."""
    return {
        "blur": (0.0,) * 16 + _tenths(20, 25),
        "scale": (1.0,) * 10 + _tenths(10, 80),
        "noise": (0.0,) * 25 + tuple(float(sigma) for sigma in range(5, 16)),
        "jpeg_quality": (0,) * 11 + tuple(range(50, 70)),
    }


def get_config():
    config = paper.get_config()
    config.model.loss_reduction = "official"
    config.input.degradation.update(official_degradation_sets())
    return config
