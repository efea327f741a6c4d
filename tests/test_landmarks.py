"""The 300W mirror permutation and `flip_sample`: involution, eyes swap, image/flow consistency."""

import numpy as np

from gfrnet_tf.data.landmarks import flip_landmarks, flip_sample
from gfrnet_tf.ibug68 import MIRROR_PERMUTATION
from gfrnet_tf.ops import warp_image

WIDTH = 24


def _sample(rng, with_flow=True):
    sample = {
        "target": rng.rand(16, WIDTH, 3).astype(np.float32),
        "guide": rng.rand(16, WIDTH, 3).astype(np.float32),
        "landmarks": rng.uniform(0, 15, (68, 2)).astype(np.float32),
        "guide_landmarks": rng.uniform(0, 15, (68, 2)).astype(np.float32),
    }
    if with_flow:
        sample["flow"] = rng.uniform(-1, 1, (16, WIDTH, 2)).astype(np.float32)
    return sample


def test_permutation_matches_300w_pairs_by_hand():
    one_based = {j + 1: p + 1 for j, p in enumerate(MIRROR_PERMUTATION)}
    expected = {
        1: 17,
        9: 9,
        18: 27,
        22: 23,
        28: 28,
        31: 31,
        32: 36,
        34: 34,
        37: 46,
        40: 43,
        41: 48,
        42: 47,
        49: 55,
        52: 52,
        58: 58,
        61: 65,
        63: 63,
        66: 68,
        67: 67,
    }
    assert {j: one_based[j] for j in expected} == expected
    assert all(MIRROR_PERMUTATION[p] == j for j, p in enumerate(MIRROR_PERMUTATION))


def test_flip_twice_is_identity():
    sample = _sample(np.random.RandomState(0))
    twice = flip_sample(flip_sample(sample))
    for key, value in sample.items():
        # Images and flow move exactly; x -> W-1-x -> x may round in the last float bit.
        np.testing.assert_allclose(twice[key].numpy(), value, rtol=0, atol=2e-6, err_msg=key)


def test_left_eye_points_become_right_eye_points():
    points = np.random.RandomState(1).uniform(0, WIDTH - 1, (68, 2)).astype(np.float32)
    flipped = flip_landmarks(points, WIDTH).numpy()
    mirrored_left_eye = np.stack([WIDTH - 1 - points[36:42, 0], points[36:42, 1]], -1)
    # As sets: the new right eye (43-48) sits where the mirrored left eye (37-42) was.
    np.testing.assert_allclose(np.sort(flipped[42:48], 0), np.sort(mirrored_left_eye, 0))
    np.testing.assert_allclose(flipped[45], mirrored_left_eye[0])  # outer corners 37 -> 46


def test_flipped_landmarks_stay_on_their_image_features():
    rng = np.random.RandomState(2)
    sample = _sample(rng, with_flow=False)
    sample["landmarks"] = np.stack([rng.randint(0, WIDTH, 68), rng.randint(0, 16, 68)], -1).astype(
        np.float32
    )
    image = np.zeros((16, WIDTH, 3), np.float32)
    xy = sample["landmarks"].astype(int)
    image[xy[:, 1], xy[:, 0]] = np.arange(68)[:, None] + 1.0  # each point marks its own id
    sample["target"] = image
    flipped = flip_sample(sample)
    fxy = flipped["landmarks"].numpy().astype(int)
    seen = flipped["target"].numpy()[fxy[:, 1], fxy[:, 0], 0]
    # Point j of the flipped set is old point MIRROR_PERMUTATION[j], standing on its mark
    # (where two points share a pixel the later mark wins, so compare mark values).
    expected = image[xy[MIRROR_PERMUTATION, 1], xy[MIRROR_PERMUTATION, 0], 0]
    np.testing.assert_array_equal(seen, expected)


def test_flipped_flow_still_warps_flipped_guide_onto_flipped_target():
    sample = _sample(np.random.RandomState(3))
    sample["target"] = warp_image(sample["guide"][None], sample["flow"][None])[0].numpy()
    flipped = flip_sample(sample)
    rewarped = warp_image(flipped["guide"][None], flipped["flow"][None])[0]
    np.testing.assert_allclose(rewarped.numpy(), flipped["target"].numpy(), atol=1e-5)
