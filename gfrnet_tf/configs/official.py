"""The `paper` preset with the official WarpNet code's readings where they differ from the
paper's text: its flow-loss normalisation (`loss_reduction="official"`: the landmark term
as `MSELoss` of the masked map, TV as per-direction means) and the degradation ranges of
its data loader (csxmli2016/GFRNet_WarpNet at ff10f06, data/facefh_dataset.py).

The official WarpNet code trains WarpNet alone and has no image l2 term; under "official"
the l2 term is the project's per-pixel mean (docs/FIDELITY.md, "The three loss readings").

That loader applies each degradation with a probability, which the value sets below
encode by repetition (each set is sampled uniformly; "none" is blur 0, scale 1, noise 0,
JPEG quality 0 = lossless). Python's `random.randint(a, b)` includes `b`, numpy's
`np.random.randint(a, b)` does not:

- blur (line 42): `random.randint(20, 41) / 10`, applied when <= 2.5 (line 43): 16 x none,
  2.0 to 2.5 (6 of 22 values);
- scale (line 49): `random.randint(10, 90) / 10`, applied when <= 8 (line 50): 10 x none,
  1.0 to 8.0 (71 of 81);
- noise (line 31): `np.random.randint(5, 40)`, 5 to 39, applied when <= 15 (line 32):
  24 x none, 5 to 15 (11 of 35);
- JPEG (line 56): `random.randint(50, 80)`, applied when < 70 (line 58): 11 x none, 50 to
  69 (20 of 31).
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
        "noise": (0.0,) * 24 + tuple(float(sigma) for sigma in range(5, 16)),
        "jpeg_quality": (0,) * 11 + tuple(range(50, 70)),
    }


def get_config():
    config = paper.get_config()
    config.model.loss_reduction = "official"
    config.input.degradation.update(official_degradation_sets())
    return config
