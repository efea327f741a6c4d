"""SavedModel export: TF Serving layout, both signatures, in-graph input checks, loading."""

import io
import os
import struct
import subprocess
import sys

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from gfrnet_tf.data.images import to_model_range, to_uint8
from gfrnet_tf.errors import BadConfigError, BadImageError
from gfrnet_tf.export import export_savedmodel
from gfrnet_tf.export.graph_decode import decode_upright_rgb
from gfrnet_tf.export.savedmodel import ENCODED_SIGNATURE, next_version, recorded_image_size
from gfrnet_tf.io.images import decode_image
from image_fixtures import blocks
from support import SHALLOW, built_gfrnet, run_module

SIZE = 32


def _keras_uint8(model, degraded, guide):
    """The reference: the Keras model on the same uint8 inputs, converted independently."""
    outputs = model({"degraded": to_model_range(degraded), "guide": to_model_range(guide)})
    images = {name: to_uint8(outputs[name]).numpy() for name in ("restored", "warped_guide")}
    return {**images, "flow": outputs["flow"].numpy()}


def _assert_equals_keras(outputs, expected):
    """uint8 images exactly; the float flow to float precision (another graph's rounding)."""
    assert set(outputs) == set(expected)
    for name, value in expected.items():
        if name == "flow":
            np.testing.assert_allclose(outputs[name], value, atol=1e-5)
        else:
            np.testing.assert_array_equal(outputs[name], value, err_msg=name)


def _png(image):
    return tf.io.encode_png(image).numpy()


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(2)
    return built_gfrnet(SHALLOW, SIZE)


def _export_app(*args):
    """`gfrnet-export` in a subprocess (absl flags are process-global; apps share names)."""
    return run_module("gfrnet_tf.apps.export", *args, timeout=300)


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    """The SavedModel as the `gfrnet-export` command writes it."""
    folder = tmp_path_factory.mktemp("models")
    model.save(folder / "model.keras")
    done = _export_app(
        f"--model={folder / 'model.keras'}",
        f"--output={folder / 'gfrnet'}",
        "--formats=savedmodel",
        f"--image_size={SIZE}",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    path = folder / "gfrnet" / "1"
    assert f"savedmodel: {path}" in done.stdout
    return path, tf.saved_model.load(str(path))


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(3)
    degraded = rng.integers(0, 256, (2, SIZE, SIZE, 3), dtype=np.uint8)
    degraded[0] = 0  # uint8 edges: all black and all white inputs
    degraded[1, :, : SIZE // 2] = 255
    return degraded, rng.integers(0, 256, (2, SIZE, SIZE, 3), dtype=np.uint8)


def test_versioned_layout_and_signature_contract(exported):
    path, loaded = exported
    assert path.name == "1" and (path / "saved_model.pb").is_file()
    assert not [p for p in os.listdir(path.parent) if p != "1"]  # no temp folder left
    assert set(loaded.signatures) == {"serving_default", ENCODED_SIGNATURE}
    default = loaded.signatures["serving_default"]
    inputs = default.structured_input_signature[1]
    assert {name: spec.dtype for name, spec in inputs.items()} == {
        "degraded": tf.uint8,
        "guide": tf.uint8,
    }
    output_specs = {"restored": tf.uint8, "warped_guide": tf.uint8, "flow": tf.float32}
    for signature in loaded.signatures.values():
        outputs = signature.structured_outputs
        assert {name: spec.dtype for name, spec in outputs.items()} == output_specs
    assert default.structured_outputs["flow"].shape.as_list() == [None, SIZE, SIZE, 2]
    encoded_inputs = loaded.signatures[ENCODED_SIGNATURE].structured_input_signature[1]
    assert {spec.dtype for spec in encoded_inputs.values()} == {tf.string}
    # The signatures leave H, W dynamic, so the size is recorded beside them.
    assert recorded_image_size(loaded) == SIZE


def test_uint8_signature_equals_keras(model, exported, images):
    outputs = exported[1].signatures["serving_default"](degraded=images[0], guide=images[1])
    _assert_equals_keras(
        {name: value.numpy() for name, value in outputs.items()}, _keras_uint8(model, *images)
    )


def test_encoded_signature_equals_uint8_signature_on_load_image_pixels(exported, images):
    """Encoded files restore to what `load_image` + `serving_default` give, for plain files
    and for every awkward kind of `_awkward_files`."""
    degraded, guide = images
    signatures = exported[1].signatures
    files = [tf.io.encode_jpeg(image, quality=90).numpy() for image in degraded]
    files += list(_awkward_files().values())
    guides = [_png(guide[k % len(guide)]) for k in range(len(files))]
    encoded = signatures[ENCODED_SIGNATURE](degraded=tf.constant(files), guide=tf.constant(guides))
    decoded = np.stack([decode_image(data, "file", min_size=1) for data in files])
    direct = signatures["serving_default"](
        degraded=decoded, guide=np.stack([guide[k % len(guide)] for k in range(len(files))])
    )
    for name in ("restored", "warped_guide", "flow"):
        np.testing.assert_array_equal(encoded[name].numpy(), direct[name].numpy(), err_msg=name)


def _saved(image, **options):
    """A PIL image (or uint8 array) encoded in memory with Pillow's `save` options."""
    image = image if isinstance(image, Image.Image) else Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, **options)
    return buffer.getvalue()


def _exif(orientation, byte_order="II", kind=3):
    """An APP1/eXIf payload by hand: one IFD0 entry, orientation as SHORT (3) or LONG (4)."""
    e = "<" if byte_order == "II" else ">"
    value = struct.pack(
        e + ("HH" if kind == 3 else "I"), *((orientation, 0) if kind == 3 else (orientation,))
    )
    return (
        b"Exif\0\0"
        + byte_order.encode()
        + struct.pack(e + "HI", 42, 8)
        + struct.pack(e + "HHHI", 1, 0x0112, kind, 1)
        + value
        + struct.pack(e + "I", 0)
    )


def _picture():
    """Four colours (each of the 8 orientations looks different), darker every third row."""
    picture = blocks(SIZE, SIZE)
    picture[::3] //= 2
    return picture


def _awkward_files():
    """`{name: encoded bytes}` at SIZE x SIZE whose pixels depend on decoding details."""
    picture = _picture()
    alpha = (np.arange(SIZE * SIZE) % 256).astype(np.uint8).reshape(SIZE, SIZE, 1)
    rgba = Image.fromarray(np.concatenate([picture, alpha], axis=-1), "RGBA")
    palette = Image.fromarray(picture).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    wide = np.random.default_rng(4).integers(0, 65536, (SIZE, SIZE, 4), dtype=np.uint16)
    files = {
        f"exif_{o}.jpg": _saved(picture, format="JPEG", quality=95, exif=_exif(o))
        for o in range(1, 9)
    }
    files.update(
        {
            "exif_6_big_endian.jpg": _saved(picture, format="JPEG", exif=_exif(6, "MM")),
            "exif_5_long.jpg": _saved(picture, format="JPEG", exif=_exif(5, "MM", kind=4)),
            "exif_3_progressive.jpg": _saved(
                picture, format="JPEG", progressive=True, exif=_exif(3)
            ),
            "exif_8.png": _saved(picture, format="PNG", exif=_exif(8)),
            "cmyk.jpg": _saved(Image.fromarray(picture).convert("CMYK"), format="JPEG"),
            "grey.jpg": _saved(picture[..., 0], format="JPEG"),
            "rgba.png": _saved(rgba, format="PNG"),
            "grey_alpha.png": _saved(rgba.convert("LA"), format="PNG"),
            "palette_4bit.png": _saved(palette, format="PNG"),
            "palette_transparent.png": _saved(palette, format="PNG", transparency=3),
            "rgb_transparent_colour.png": _saved(
                picture, format="PNG", transparency=tuple(int(v) for v in picture[0, 0])
            ),
            "grey_16bit.png": cv2.imencode(".png", wide[..., 0])[1].tobytes(),
            "rgb_16bit.png": cv2.imencode(".png", wide[..., :3])[1].tobytes(),
            "rgba_16bit.png": cv2.imencode(".png", wide)[1].tobytes(),
        }
    )
    return files


def test_graph_decoding_equals_load_image_for_each_awkward_file():
    """Pixel for pixel, file by file: the in-graph decoder is `load_image`'s twin."""
    decode = tf.function(lambda data: decode_upright_rgb(data, "degraded", 0))
    references = {}
    for name, data in _awkward_files().items():
        expected = decode_image(data, name, min_size=1)
        np.testing.assert_array_equal(decode(tf.constant(data)).numpy(), expected, err_msg=name)
        references[name] = expected
    # The corpus tests what it claims: the orientations differ, alpha changed pixels.
    upright = [references[f"exif_{o}.jpg"] for o in range(1, 9)]
    assert all(
        np.abs(a.astype(int) - b).mean() > 20
        for k, a in enumerate(upright)
        for b in upright[k + 1 :]
    )
    assert np.abs(references["rgba.png"].astype(int) - _picture()).max() > 100


@pytest.mark.parametrize(
    "degraded,guide,message",
    [
        (
            np.zeros((1, 16, SIZE, 3), np.uint8),
            np.zeros((1, 16, SIZE, 3), np.uint8),
            f"degraded must be uint8 \\[batch, {SIZE}, {SIZE}, 3\\]",
        ),
        (
            np.zeros((1, SIZE, SIZE, 3), np.uint8),
            np.zeros((2, SIZE, SIZE, 3), np.uint8),
            "same batch size",
        ),
    ],
)
def test_uint8_signature_rejects_wrong_shapes(exported, degraded, guide, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        exported[1].signatures["serving_default"](degraded=degraded, guide=guide)


_JPEG = _saved(_picture(), format="JPEG", quality=95, exif=_exif(6))
_ELEMENT_1 = "element\\] \\[1\\]"  # the assertion names the bad element of the batch
_PNG = _saved(_picture(), format="PNG")


def _cut(jpeg, fraction):
    """`jpeg` cut `fraction` of the way through its scan data: the header (SOF) is intact."""
    scan = jpeg.index(b"\xff\xda")
    return jpeg[: scan + int((len(jpeg) - scan) * fraction)]


@pytest.mark.parametrize(
    "bad,message",
    [
        (b"not an image at all", "is not a JPEG or PNG image"),
        (b"\x89PNG\r\n\x1a\n", "is not a JPEG or PNG image"),  # truncated before the size
        (
            _png(np.zeros((16, SIZE, 3), np.uint8)),
            f"must be {SIZE}x{SIZE}; got height, width\\] \\[16 {SIZE}\\]",
        ),
        # Cut in half: TF's decoder would fail with its internal text, or (JPEG) a cut file
        # could pass the header check; the graph names the element and the problem instead.
        (_cut(_JPEG, 0.5), f"{_ELEMENT_1} \\[is truncated or corrupt JPEG data"),
        (_cut(_JPEG, 0.99), f"{_ELEMENT_1} \\[is truncated or corrupt JPEG data"),
        (_PNG[: len(_PNG) // 2], f"{_ELEMENT_1} \\[is truncated or corrupt PNG data"),
    ],
    ids=[
        "text",
        "png_signature_only",
        "wrong_size",
        "jpeg_cut_in_scan",
        "jpeg_cut_at_end",
        "png_cut",
    ],
)
def test_encoded_signature_rejects_bad_files(exported, bad, message):
    """Bad files fail in the graph with a message naming the element (INVALID_ARGUMENT);
    `load_image` refuses the corrupt ones as well."""
    good = _png(np.zeros((SIZE, SIZE, 3), np.uint8))
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        exported[1].signatures[ENCODED_SIGNATURE](
            degraded=tf.constant([good, bad]), guide=tf.constant([good, good])
        )
    if "truncated" in message:
        with pytest.raises(BadImageError):
            decode_image(bad, "bad", min_size=1)


def test_documented_differences_from_load_image():
    """What `graph_decode` says it leaves: an orientation only in XMP is applied by
    `load_image`, not in the graph; a JPEG cut and closed with an end marker decodes to the
    same pixels in both (libjpeg only warns); a PNG without IEND is refused in the graph
    only; an EXIF block that is not TIFF data is ignored by both."""
    decode = tf.function(lambda data: decode_upright_rgb(data, "degraded", 0))
    xmp = _saved(
        _picture(), format="JPEG", quality=95, xmp=b'<rdf:Description tiff:Orientation="6"/>'
    )
    np.testing.assert_array_equal(
        decode(xmp).numpy(), np.rot90(decode_image(xmp, "xmp", min_size=1), k=1)
    )
    closed = _cut(_JPEG, 0.6) + b"\xff\xd9"
    np.testing.assert_array_equal(decode(closed).numpy(), decode_image(closed, "cut", min_size=1))
    with pytest.raises(tf.errors.InvalidArgumentError, match="truncated or corrupt PNG"):
        decode(_PNG[:-12])  # no IEND
    assert decode_image(_PNG[:-12], "cut", min_size=1).shape == (SIZE, SIZE, 3)
    not_tiff = _saved(_picture(), format="JPEG", exif=b"Exif\0\0not a TIFF block")
    np.testing.assert_array_equal(
        decode(not_tiff).numpy(), decode_image(not_tiff, "exif", min_size=1)
    )


def test_versions_are_never_overwritten(model, exported):
    model_dir = exported[0].parent
    assert next_version(model_dir) == 2
    with pytest.raises(BadConfigError, match="already exists"):
        export_savedmodel(model, model_dir, SIZE, version=1)


def test_saved_model_cli_run_matches_keras(model, exported, images, tmp_path):
    np.save(tmp_path / "degraded.npy", images[0])
    np.save(tmp_path / "guide.npy", images[1])
    command = [
        sys.executable,
        "-m",
        "tensorflow.python.tools.saved_model_cli",
        "run",
        "--dir",
        str(exported[0]),
        "--tag_set",
        "serve",
        "--signature_def",
        "serving_default",
        "--inputs",
        f"degraded={tmp_path / 'degraded.npy'};guide={tmp_path / 'guide.npy'}",
        "--outdir",
        str(tmp_path / "out"),
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    expected = _keras_uint8(model, *images)
    _assert_equals_keras(
        {name: np.load(tmp_path / "out" / f"{name}.npy") for name in expected}, expected
    )


def test_export_app_reports_bad_model_in_one_line(tmp_path):
    (tmp_path / "broken.keras").write_bytes(b"PK\x03\x04 not really a zip")
    done = _export_app(f"--model={tmp_path / 'broken.keras'}", f"--output={tmp_path / 'out'}")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: {tmp_path / 'broken.keras'}: not a .keras archive (it is not a zip file)"
    )
    assert not (tmp_path / "out").exists()
