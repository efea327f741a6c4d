"""Whole-photo restoration: model backends, flow pictures, and gfrnet-restore on a folder."""

import numpy as np
import pytest

from gfrnet_tf import ops
from gfrnet_tf.visualize import flow_to_rgb, image_grid


def test_flow_colouring_identity_is_white_and_translation_is_flat():
    identity = ops.identity_grid(16, 24).numpy()[0]
    np.testing.assert_array_equal(flow_to_rgb(identity), 255)
    shifted = identity + np.float32([2.0 / 23.0 * 3.0, 0.0])  # 3 px to the right everywhere
    colours = flow_to_rgb(shifted).reshape(-1, 3)
    assert len(np.unique(colours, axis=0)) == 1
    red, green, blue = colours[0].astype(int)
    assert red == 255 and green == blue == 0  # hue 0 = +x, fully saturated at the maximum


def test_image_grid_layout():
    a = np.zeros((4, 5, 3), np.uint8)
    b = np.full((4, 5, 3), 7, np.uint8)
    grid = image_grid([[a, b], [b, a]], gap=1)
    assert grid.shape == (9, 11, 3)
    np.testing.assert_array_equal(grid[:4, 6:], b)
    np.testing.assert_array_equal(grid[4], 255)
    with pytest.raises(ValueError, match="equally sized"):
        image_grid([[a, b[:3]]])
