"""Pictures of faces: the labelled grid every picture uses, and its enlargement."""

import numpy as np
import pytest

from gfrnet_tf.visualize import enlargement, image_grid, labelled_grid


def _faces(rows, columns, side, seed=0):
    rng = np.random.default_rng(seed)
    return [
        [rng.integers(0, 256, (side, side, 3), dtype=np.uint8) for _ in range(columns)]
        for _ in range(rows)
    ]


def test_enlargement_is_the_whole_factor_reaching_the_display_size():
    assert [enlargement(side, 256) for side in (32, 64, 100, 256, 300)] == [8, 4, 2, 1, 1]


def test_small_faces_are_enlarged_by_nearest_neighbour_under_their_labels_with_a_note():
    faces = _faces(2, 3, 16)
    picture = labelled_grid(["degraded", "guide", "restored"], faces, display=64, gap=4)
    factor, cell = 4, 16 * 4 + 4
    grid_width = 3 * cell - 4
    assert picture.shape[1] == grid_width and picture.dtype == np.uint8
    expected = image_grid(
        [[np.kron(face, np.ones((factor, factor, 1), np.uint8)) for face in row] for row in faces],
        gap=4,
    )
    # The grid sits between the label band and the note band, pixel for pixel.
    top = next(y for y in range(picture.shape[0]) if np.array_equal(picture[y], expected[0]))
    np.testing.assert_array_equal(picture[top : top + expected.shape[0]], expected)
    header, note = picture[:top], picture[top + expected.shape[0] :]
    for column in range(3):  # some ink at the left of every column's label, none past the grid
        assert (header[:, column * cell : column * cell + 20] < 128).any(), column
    assert note.shape[0] > 8 and (note < 128).any()  # "16x16 px faces shown 4x larger ..."


def test_large_faces_are_shown_as_they_are_without_a_note():
    faces = _faces(1, 2, 40)
    picture = labelled_grid(["a", "b"], faces, display=32, gap=2)
    expected = image_grid(faces, gap=2)
    np.testing.assert_array_equal(picture[-expected.shape[0] :], expected)
    header = picture[: -expected.shape[0]]
    assert 10 < header.shape[0] < 40 and (header < 128).any()


def test_one_label_per_column():
    with pytest.raises(ValueError, match="one label per column"):
        labelled_grid(["only one"], _faces(1, 2, 8))
