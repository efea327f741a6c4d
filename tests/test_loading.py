"""gfrnet_tf.loading: every artefact loads with the size it was made for, or fails by name."""

import json
import os
import zipfile

import numpy as np
import pytest

from gfrnet_tf.data.images import to_model_range, to_uint8
from gfrnet_tf.errors import BadModelFileError
from gfrnet_tf.export import export_savedmodel
from gfrnet_tf.loading import load_gfrnet, load_trained
from support import SHALLOW, built_gfrnet, run_module

SIZE = 32


def _restored(model, degraded, guide):
    outputs = model({"degraded": to_model_range(degraded), "guide": to_model_range(guide)})
    return to_uint8(outputs["restored"]).numpy()


def _workdir(root, model, model_config, size=SIZE, step=5):
    """A training run's layout: config.json next to checkpoints/step-N.weights.h5."""
    (root / "checkpoints").mkdir(parents=True)
    (root / "config.json").write_text(
        json.dumps({"model": model_config, "input": {"image_size": size}})
    )
    model.save_weights(root / "checkpoints" / f"step-{step:08d}.weights.h5")
    return root


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(3)
    return (
        rng.integers(0, 256, (2, SIZE, SIZE, 3), dtype=np.uint8),
        rng.integers(0, 256, (2, SIZE, SIZE, 3), dtype=np.uint8),
    )


def test_keras_file_workdir_and_checkpoint_load_the_same_model_with_their_sizes(tmp_path, images):
    model = built_gfrnet(SHALLOW, SIZE)
    model.save(tmp_path / "model.keras")
    workdir = _workdir(tmp_path / "run", model, SHALLOW)
    # An older checkpoint must not be picked: the highest step is the latest.
    built_gfrnet(SHALLOW, SIZE).save_weights(workdir / "checkpoints" / "step-00000002.weights.h5")
    expected = _restored(model, *images)
    checkpoint = workdir / "checkpoints" / "step-00000005.weights.h5"
    for path, size in (
        (tmp_path / "model.keras", None),
        (workdir, SIZE),
        (checkpoint, SIZE),
        (workdir / "checkpoints", SIZE),
    ):
        loaded = load_trained(path)
        assert (loaded.format, loaded.image_size) == ("keras", size), path
        np.testing.assert_array_equal(_restored(loaded.model, *images), expected)
    assert load_trained(workdir).source == checkpoint
    assert load_trained(workdir).config.input.image_size == SIZE


def test_savedmodel_and_serving_folder_load_with_the_recorded_size(tmp_path):
    model = built_gfrnet(SHALLOW, SIZE)
    export_savedmodel(model, tmp_path / "served", SIZE, 1)
    export_savedmodel(model, tmp_path / "served", SIZE, 3)
    for path, version in ((tmp_path / "served", "3"), (tmp_path / "served" / "1", "1")):
        loaded = load_trained(path)
        assert (loaded.format, loaded.image_size, loaded.source.name) == (
            "savedmodel",
            SIZE,
            version,
        )
    with pytest.raises(BadModelFileError, match="served"):
        load_gfrnet(tmp_path / "served")  # export needs the Keras model, not a SavedModel


def test_checkpoint_loads_without_the_training_only_vgg_face_file(tmp_path, images):
    rng = np.random.default_rng(0)
    weights = {
        "conv1_1/kernel": rng.normal(0, 0.1, (3, 3, 3, 64)),
        "conv1_1/bias": np.zeros(64),
        "conv1_2/kernel": rng.normal(0, 0.1, (3, 3, 64, 64)),
        "conv1_2/bias": np.zeros(64),
    }
    np.savez(tmp_path / "vgg.npz", **{k: v.astype(np.float32) for k, v in weights.items()})
    config = {
        **SHALLOW,
        "vgg_face_weights": str(tmp_path / "vgg.npz"),
        "perceptual_layer": "conv1_2",
    }
    model = built_gfrnet(config, SIZE)
    assert model.perceptual_network is not None  # its weights are in the checkpoint
    workdir = _workdir(tmp_path / "run", model, config)
    os.remove(tmp_path / "vgg.npz")
    loaded = load_gfrnet(workdir)
    assert loaded.model.perceptual_network is None
    np.testing.assert_array_equal(_restored(loaded.model, *images), _restored(model, *images))


def _zip_bomb(path, member="config.json", unpacked=64 * 2**20):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member, b" " * unpacked)


@pytest.mark.parametrize(
    "name, make, problem",
    [
        ("missing.keras", None, "no such file"),
        ("garbage.keras", lambda p: p.write_bytes(b"\x00" * 64), "not a .keras archive"),
        ("model.txt", lambda p: p.write_text("hello"), "expected a .keras file"),
        ("empty", lambda p: p.mkdir(), "no step-N.weights.h5 checkpoint"),
        ("bomb.keras", _zip_bomb, "config.json unpacks to 67108864 bytes"),
    ],
)
def test_unusable_artefacts_fail_by_name(tmp_path, name, make, problem):
    path = tmp_path / name
    if make:
        make(path)
    with pytest.raises(BadModelFileError, match=problem) as error:
        load_trained(path)
    assert error.value.source == str(path)


@pytest.mark.parametrize(
    "size, problem",
    [
        ("64", "input.image_size must be an integer >= 8, got '64'"),
        (4, "input.image_size must be an integer >= 8, got 4"),
        (None, "input.image_size must be an integer >= 8, got None"),
    ],
)
def test_a_run_config_with_a_bad_image_size_is_named(tmp_path, size, problem):
    workdir = _workdir(tmp_path / "run", built_gfrnet(SHALLOW, SIZE), SHALLOW, size=size)
    with pytest.raises(BadModelFileError, match=problem) as error:
        load_trained(workdir)
    assert error.value.source == str(workdir / "config.json")


@pytest.mark.slow
def test_export_command_takes_the_size_the_run_trained_at(tmp_path):
    """Trained at 32 px, exported with no --image_size: the export records 32, not 256."""
    workdir = _workdir(tmp_path / "run", built_gfrnet(SHALLOW, SIZE), SHALLOW)
    done = run_module(
        "gfrnet_tf.apps.export",
        f"--model={workdir}",
        f"--output={tmp_path / 'out'}",
        "--formats=savedmodel",
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"at {SIZE}x{SIZE}" in done.stdout
    assert load_trained(tmp_path / "out").image_size == SIZE
