"""The shared image loader: every awkward file converted to uint8 RGB or rejected by name."""

import tracemalloc

import numpy as np
import pytest
from PIL import Image

from gfrnet_tf.errors import BadImageError
from gfrnet_tf.io.images import DEFAULT_MIN_SIZE, decode_image, load_image, save_image
from image_fixtures import blocks, png_header, write_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    return folder, write_corpus(folder)


def _rejection(path, **kwargs):
    with pytest.raises(BadImageError) as caught:
        load_image(path, **kwargs)
    assert caught.value.source == str(path)
    return caught.value.problem


def test_every_corpus_file_is_converted_or_rejected_by_name(corpus):
    folder, outcomes = corpus
    for name, outcome in outcomes.items():
        if outcome[0] == "rejected":
            assert outcome[1] in _rejection(folder / name), name
            continue
        _, expected, tolerance = outcome
        loaded = load_image(folder / name)
        assert loaded.dtype == np.uint8 and loaded.shape == expected.shape, name
        assert np.abs(loaded.astype(int) - expected).mean() <= tolerance, name


def test_partial_alpha_blends_with_white(tmp_path):
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[..., :3], rgba[..., 3] = (200, 10, 10), 128
    Image.fromarray(rgba, "RGBA").save(tmp_path / "half.png")
    alpha = 128 / 255
    expected = np.array([200, 10, 10]) * alpha + 255 * (1 - alpha)
    assert np.abs(load_image(tmp_path / "half.png")[0, 0] - expected).max() <= 1


def test_sixteen_bit_is_rescaled_not_clipped(corpus):
    folder, _ = corpus
    assert Image.open(folder / "deep_16bit.png").mode.startswith("I;16")
    assert Image.open(folder / "print_cmyk.jpg").mode == "CMYK"
    # Pillow's own I;16 -> RGB conversion would clip every value above 255 to white.
    assert load_image(folder / "deep_16bit.png").max() == 255
    assert load_image(folder / "deep_16bit.png").min() == 0


def test_min_size_is_configurable(corpus):
    folder, _ = corpus
    assert load_image(folder / "thumbnail.png", min_size=8).shape[:2] == (DEFAULT_MIN_SIZE - 1, 64)


def test_bytes_decode_equals_file_load(tmp_path):
    Image.fromarray(blocks()).save(tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()
    np.testing.assert_array_equal(decode_image(data, "a.png"), load_image(tmp_path / "a.png"))
    with pytest.raises(BadImageError, match="empty"):
        decode_image(b"", "nothing.jpg")


def test_missing_file_is_rejected(tmp_path):
    assert _rejection(tmp_path / "absent.jpg") == "no such file"


def test_pixel_limit_is_checked_from_the_header_before_decoding(tmp_path):
    (tmp_path / "bomb.png").write_bytes(png_header(30000, 30000))
    tracemalloc.start()
    _rejection(tmp_path / "bomb.png")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 10 * 2**20  # the 2.7 GB the header claims was never allocated
    Image.fromarray(blocks(300, 400)).save(tmp_path / "big.png")
    assert "400x300 is 120000 pixels" in _rejection(tmp_path / "big.png", max_pixels=100_000)
    assert load_image(tmp_path / "big.png", max_pixels=120_000).shape == (300, 400, 3)


def test_save_round_trip_is_atomic(tmp_path):
    image = blocks()
    save_image(tmp_path / "out.png", image)
    np.testing.assert_array_equal(load_image(tmp_path / "out.png"), image)
    save_image(tmp_path / "out.jpg", image)
    assert np.abs(load_image(tmp_path / "out.jpg").astype(int) - image).mean() < 4
    with pytest.raises(BadImageError, match="unknown image format"):
        save_image(tmp_path / "out.xyz", image)
    with pytest.raises(ValueError):
        save_image(tmp_path / "float.png", image.astype(np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jpg", "out.png"]
    assert (tmp_path / "out.png").stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask():
    import os

    current = os.umask(0)
    os.umask(current)
    return current
