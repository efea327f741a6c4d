"""Feathered paste-back and guide choice: round trips, locality, nearest pose."""

import numpy as np
import pytest

from gfrnet_tf.people.pose import choose_guide, pose_distance
from gfrnet_tf.restoration.paste import feather_mask, paste_face


def _photo(rng, height=90, width=120):
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("box", [(30, 20, 94, 84), (-10, -12, 54, 52), (80, 50, 144, 114)])
def test_pasting_the_unchanged_crop_gives_the_photo_back(box):
    photo = _photo(np.random.default_rng(0))
    x0, y0, x1, y1 = box
    padded = np.pad(photo, ((64, 64), (64, 64), (0, 0)))  # boxes may reach past the border
    crop = padded[y0 + 64 : y1 + 64, x0 + 64 : x1 + 64]
    np.testing.assert_array_equal(paste_face(photo, crop, box), photo)


def test_only_the_face_region_changes_and_the_seam_is_feathered():
    photo = _photo(np.random.default_rng(1))
    face = np.zeros((32, 32, 3), np.uint8)  # a 32 px restored crop pasted into a 60 px box
    box = (40, 20, 100, 80)
    pasted = paste_face(photo, face, box, feather=0.2)
    outside = np.ones(photo.shape[:2], bool)
    outside[20:80, 40:100] = False
    np.testing.assert_array_equal(pasted[outside], photo[outside])
    # Farther than the 12 px ramp from the box edge: the face itself.
    np.testing.assert_array_equal(pasted[32:68, 52:88], 0)
    # On the ramp the result lies between photo and face, closer to the photo near the edge.
    ring = pasted[20:80, 40:100].astype(int)
    original = photo[20:80, 40:100].astype(int)
    assert np.all(ring <= original)
    assert np.abs(ring[0] - original[0]).mean() < np.abs(ring[6] - original[6]).mean()


def test_feather_mask_shape_and_profile():
    mask = feather_mask(20, 40, 0.25)
    assert mask.shape == (20, 40)
    assert mask.max() == 1.0 and mask[10, 20] == 1.0
    np.testing.assert_allclose(mask[10, :10], (np.arange(10) + 0.5) / 10.0)
    np.testing.assert_allclose(mask, mask[::-1, ::-1])


def test_box_outside_the_photo_is_an_error():
    photo = _photo(np.random.default_rng(2))
    with pytest.raises(ValueError, match="outside"):
        paste_face(photo, np.zeros((8, 8, 3), np.uint8), (200, 200, 208, 208))


def _rotated(points, degrees, scale=1.0, shift=(0.0, 0.0)):
    angle = np.radians(degrees)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return scale * points @ rotation.T + np.asarray(shift)


def test_guide_choice_picks_the_nearest_pose():
    face = np.array([[30, 40], [70, 40], [50, 60], [35, 80], [65, 80]], float)  # 5 points
    guides = [
        _rotated(face, 30),
        _rotated(face, 4, scale=2.5, shift=(100, -40)),
        _rotated(face, -12),
    ]
    index, distances = choose_guide(face, guides)
    assert index == 1
    assert distances[1] < distances[2] < distances[0]
    # Translation and scale alone do not count as a pose change.
    assert pose_distance(face, face * 3.0 + 7.0) == pytest.approx(0.0, abs=1e-12)


def test_guide_choice_needs_matching_layouts():
    with pytest.raises(ValueError, match="layout"):
        pose_distance(np.zeros((5, 2)), np.zeros((68, 2)))
