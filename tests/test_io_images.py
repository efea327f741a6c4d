"""The shared image loader: every awkward file converted to uint8 RGB or rejected by name."""

import io
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
from PIL import Image

from gfrnet_tf.errors import BadImageError
from gfrnet_tf.io.images import DEFAULT_MIN_SIZE, decode_image, load_image, save_image


def _blocks(height=48, width=64):
    """Four flat colour quadrants: orientation and colour survive JPEG at a loose tolerance."""
    image = np.zeros((height, width, 3), np.uint8)
    image[: height // 2, : width // 2] = (220, 30, 30)
    image[: height // 2, width // 2:] = (30, 220, 30)
    image[height // 2:, : width // 2] = (30, 30, 220)
    image[height // 2:, width // 2:] = (240, 240, 40)
    return image


def _png_header(width, height):
    """A valid PNG signature and IHDR claiming a huge size, followed by a tiny body."""
    def chunk(kind, payload):
        body = kind + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def _rejection(path, **kwargs):
    with pytest.raises(BadImageError) as caught:
        load_image(path, **kwargs)
    assert caught.value.source == str(path)
    return caught.value.problem


def test_exif_orientation_is_applied(tmp_path):
    image = _blocks()
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "rotated.jpg"
    Image.fromarray(image).save(path, quality=95, exif=exif)
    loaded = load_image(path)
    expected = np.rot90(image, k=-1)
    assert loaded.shape == expected.shape == (64, 48, 3)
    assert np.abs(loaded.astype(int) - expected).mean() < 4


def test_grayscale_becomes_three_equal_channels(tmp_path):
    gray = np.random.default_rng(0).integers(0, 256, (32, 40), dtype=np.uint8)
    Image.fromarray(gray).save(tmp_path / "gray.png")
    loaded = load_image(tmp_path / "gray.png")
    assert loaded.dtype == np.uint8 and loaded.shape == (32, 40, 3)
    for channel in range(3):
        np.testing.assert_array_equal(loaded[..., channel], gray)


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[..., :3] = (200, 10, 10)
    rgba[:, :10, 3] = 0
    rgba[:, 10:20, 3] = 255
    rgba[:, 20:, 3] = 128
    Image.fromarray(rgba, "RGBA").save(tmp_path / "cutout.png")
    loaded = load_image(tmp_path / "cutout.png").astype(int)
    np.testing.assert_array_equal(loaded[0, 0], (255, 255, 255))
    np.testing.assert_array_equal(loaded[0, 15], (200, 10, 10))
    alpha = 128 / 255
    expected = np.array([200, 10, 10]) * alpha + 255 * (1 - alpha)
    assert np.abs(loaded[0, 25] - expected).max() <= 1


def test_sixteen_bit_png_is_rescaled_not_clipped(tmp_path):
    eight = np.arange(32 * 32, dtype=np.uint32).reshape(32, 32) % 256
    Image.fromarray((eight * 257).astype(np.uint16)).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I;16")
    loaded = load_image(tmp_path / "deep.png")
    np.testing.assert_array_equal(loaded[..., 1], eight)


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    Image.fromarray(_blocks()).convert("CMYK").save(tmp_path / "print.jpg", quality=95)
    assert Image.open(tmp_path / "print.jpg").mode == "CMYK"
    loaded = load_image(tmp_path / "print.jpg")
    assert np.abs(loaded.astype(int) - _blocks()).mean() < 6


def test_palette_gif_and_png_named_jpg(tmp_path):
    image = _blocks()
    Image.fromarray(image).convert("P", palette=Image.Palette.ADAPTIVE).save(
        tmp_path / "few.gif")
    np.testing.assert_array_equal(load_image(tmp_path / "few.gif"), image)
    Image.fromarray(image).save(tmp_path / "liar.jpg", format="PNG")
    np.testing.assert_array_equal(load_image(tmp_path / "liar.jpg"), image)


def test_bytes_decode_equals_file_load(tmp_path):
    Image.fromarray(_blocks()).save(tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()
    np.testing.assert_array_equal(decode_image(data, "a.png"), load_image(tmp_path / "a.png"))
    with pytest.raises(BadImageError, match="empty"):
        decode_image(b"", "nothing.jpg")


@pytest.mark.parametrize("name, content, words", [
    ("empty.jpg", b"", "empty file"),
    ("noise.jpg", bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8)),
     "not an image"),
    ("notes.png", b"this is a shopping list, not a photo\n" * 20, "not an image"),
])
def test_non_images_are_rejected_by_name(tmp_path, name, content, words):
    (tmp_path / name).write_bytes(content)
    assert words in _rejection(tmp_path / name)


def test_truncated_jpeg_is_rejected(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(_blocks(256, 256)).save(buffer, format="JPEG", quality=90)
    (tmp_path / "cut.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    assert "truncated" in _rejection(tmp_path / "cut.jpg")


def test_missing_file_is_rejected(tmp_path):
    assert _rejection(tmp_path / "absent.jpg") == "no such file"


def test_pixel_limit_is_checked_from_the_header_before_decoding(tmp_path):
    (tmp_path / "bomb.png").write_bytes(_png_header(30000, 30000))
    tracemalloc.start()
    problem = _rejection(tmp_path / "bomb.png")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert "pixels" in problem
    assert peak < 10 * 2**20  # the 2.7 GB the header claims was never allocated
    Image.fromarray(_blocks(300, 400)).save(tmp_path / "big.png")
    assert "400x300 is 120000 pixels" in _rejection(tmp_path / "big.png", max_pixels=100_000)
    assert load_image(tmp_path / "big.png", max_pixels=120_000).shape == (300, 400, 3)


def test_too_small_states_the_minimum(tmp_path):
    Image.fromarray(_blocks(DEFAULT_MIN_SIZE - 1, 64)).save(tmp_path / "thumb.png")
    assert f"at least {DEFAULT_MIN_SIZE} px" in _rejection(tmp_path / "thumb.png")
    assert load_image(tmp_path / "thumb.png", min_size=8).shape[0] == DEFAULT_MIN_SIZE - 1


def test_save_round_trip_is_atomic(tmp_path):
    image = _blocks()
    save_image(tmp_path / "out.png", image)
    np.testing.assert_array_equal(load_image(tmp_path / "out.png"), image)
    save_image(tmp_path / "out.jpg", image)
    assert np.abs(load_image(tmp_path / "out.jpg").astype(int) - image).mean() < 4
    with pytest.raises(BadImageError, match="unknown image format"):
        save_image(tmp_path / "out.xyz", image)
    with pytest.raises(ValueError):
        save_image(tmp_path / "float.png", image.astype(np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jpg", "out.png"]
