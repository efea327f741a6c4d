"""SavedModel export: TF Serving layout, both signatures, in-graph input checks, loading."""

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from gfrnet_tf.data.images import to_model_range, to_uint8
from gfrnet_tf.errors import BadConfigError
from gfrnet_tf.export import export_savedmodel
from gfrnet_tf.export.savedmodel import ENCODED_SIGNATURE, next_version, recorded_image_size
from gfrnet_tf.models.gfrnet import build_gfrnet

SIZE = 32
REPO = Path(__file__).parents[1]
MODEL_CONFIG = {"widths": (8, 16, 16), "discriminator_widths": (8, 16), "local_size": 16}


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
    gfrnet = build_gfrnet(MODEL_CONFIG)
    gfrnet.build({"degraded": (None, SIZE, SIZE, 3), "guide": (None, SIZE, SIZE, 3)})
    return gfrnet


def _export_app(*args):
    """`gfrnet-export` in a subprocess (absl flags are process-global; apps share names)."""
    return subprocess.run([sys.executable, "-m", "gfrnet_tf.apps.export", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    """The SavedModel as the `gfrnet-export` command writes it."""
    folder = tmp_path_factory.mktemp("models")
    model.save(folder / "model.keras")
    done = _export_app(f"--model={folder / 'model.keras'}", f"--output={folder / 'gfrnet'}",
                       "--formats=savedmodel", f"--image_size={SIZE}")
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
    assert {name: spec.dtype for name, spec in inputs.items()} == {"degraded": tf.uint8, "guide": tf.uint8}
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
    _assert_equals_keras({name: value.numpy() for name, value in outputs.items()},
                         _keras_uint8(model, *images))


def test_encoded_signature_equals_uint8_signature(exported, images):
    degraded, guide = images
    signatures = exported[1].signatures
    jpeg = [tf.io.encode_jpeg(image, quality=90).numpy() for image in degraded]
    encoded = signatures[ENCODED_SIGNATURE](
        degraded=tf.constant(jpeg), guide=tf.constant([_png(image) for image in guide]))
    # PNG is lossless; the JPEG is compared through TF's own decoder.
    decoded = np.stack([tf.io.decode_jpeg(data).numpy() for data in jpeg])
    direct = signatures["serving_default"](degraded=decoded, guide=guide)
    for name in ("restored", "warped_guide", "flow"):
        np.testing.assert_array_equal(encoded[name].numpy(), direct[name].numpy())


@pytest.mark.parametrize("degraded,guide,message", [
    (np.zeros((1, 16, SIZE, 3), np.uint8), np.zeros((1, 16, SIZE, 3), np.uint8),
     f"degraded must be uint8 \\[batch, {SIZE}, {SIZE}, 3\\]"),
    (np.zeros((1, SIZE, SIZE, 3), np.uint8), np.zeros((2, SIZE, SIZE, 3), np.uint8),
     "same batch size"),
])
def test_uint8_signature_rejects_wrong_shapes(exported, degraded, guide, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        exported[1].signatures["serving_default"](degraded=degraded, guide=guide)


@pytest.mark.parametrize("bad,message", [
    (b"not an image at all", "is not a JPEG or PNG image"),
    (b"\x89PNG\r\n\x1a\n", "is not a JPEG or PNG image"),  # truncated before the size
    (_png(np.zeros((16, SIZE, 3), np.uint8)), f"must be {SIZE}x{SIZE}; got height, width\\] \\[16 {SIZE}\\]"),
])
def test_encoded_signature_rejects_bad_files(exported, bad, message):
    good = _png(np.zeros((SIZE, SIZE, 3), np.uint8))
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        exported[1].signatures[ENCODED_SIGNATURE](
            degraded=tf.constant([good, bad]), guide=tf.constant([good, good]))


def test_versions_are_never_overwritten(model, exported):
    model_dir = exported[0].parent
    assert next_version(model_dir) == 2
    with pytest.raises(BadConfigError, match="already exists"):
        export_savedmodel(model, model_dir, SIZE, version=1)


def test_saved_model_cli_run_matches_keras(model, exported, images, tmp_path):
    np.save(tmp_path / "degraded.npy", images[0])
    np.save(tmp_path / "guide.npy", images[1])
    command = [
        sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "run",
        "--dir", str(exported[0]), "--tag_set", "serve", "--signature_def", "serving_default",
        "--inputs", f"degraded={tmp_path / 'degraded.npy'};guide={tmp_path / 'guide.npy'}",
        "--outdir", str(tmp_path / "out"),
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    expected = _keras_uint8(model, *images)
    _assert_equals_keras({name: np.load(tmp_path / "out" / f"{name}.npy") for name in expected},
                         expected)


def test_export_app_reports_bad_model_in_one_line(tmp_path):
    (tmp_path / "broken.keras").write_bytes(b"PK\x03\x04 not really a zip")
    done = _export_app(f"--model={tmp_path / 'broken.keras'}", f"--output={tmp_path / 'out'}")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: {tmp_path / 'broken.keras'}: not a .keras archive (it is not a zip file)")
    assert not (tmp_path / "out").exists()
