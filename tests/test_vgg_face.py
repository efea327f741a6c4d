"""VGG-Face: layout, preprocessing, frozen weights and the two weights-file formats."""

import re

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from gfrnet_tf.apps import convert_vgg_face
from gfrnet_tf.errors import BadConfigError, BadModelFileError
from gfrnet_tf.models import vgg_face_convert
from gfrnet_tf.models.vgg_face import LAYER_NAMES, VGGFace, load_vgg_face_weights
from support import config_round_trip

_FILTERS = {"conv1": 64, "conv2": 128, "conv3": 256, "conv4": 512, "conv5": 512}


def _random_weights(last_layer):
    """Right-shaped random weights for conv1_1 .. last_layer, as the real file would hold."""
    weights, channels = {}, 3
    for name in LAYER_NAMES[: LAYER_NAMES.index(last_layer) + 1]:
        filters = _FILTERS[name[:5]]
        kernel = np.random.normal(0, 0.05, (3, 3, channels, filters))
        weights[f"{name}/kernel"] = kernel.astype(np.float32)
        weights[f"{name}/bias"] = np.random.normal(0, 0.05, (filters,)).astype(np.float32)
        channels = filters
    return weights


def _write_keras_vggface_h5(path, weights):
    """The Keras 2 `save_weights` layout keras-vggface's rcmalli_vggface_tf_vgg16.h5 uses."""
    # A weightless pooling layer and a top layer: the feature extractor must skip both.
    arrays = {
        **weights,
        "fc6/kernel": np.zeros((8, 4), np.float32),
        "fc6/bias": np.zeros(4, np.float32),
    }
    layers = list(dict.fromkeys(key.split("/")[0] for key in arrays))
    with h5py.File(path, "w") as file:
        file.attrs["layer_names"] = [name.encode() for name in layers + ["pool5"]]
        file.attrs["backend"] = b"tensorflow"
        file.create_group("pool5").attrs["weight_names"] = []
        for name in layers:
            group = file.create_group(name)
            group.attrs["weight_names"] = [f"{name}/kernel:0".encode(), f"{name}/bias:0".encode()]
            for short in ("kernel", "bias"):
                group[f"{name}/{short}:0"] = arrays[f"{name}/{short}"]


def _assert_loaded(model, weights):
    for conv in model.conv_layers:
        np.testing.assert_array_equal(conv.kernel.numpy(), weights[f"{conv.name}/kernel"])
        np.testing.assert_array_equal(conv.bias.numpy(), weights[f"{conv.name}/bias"])


def test_default_layout_is_vgg16_up_to_conv4_3_frozen():
    model = VGGFace()
    features = model(tf.zeros([2, 32, 32, 3]))
    assert [c.name for c in model.conv_layers] == list(LAYER_NAMES[:10])
    assert features.shape == (2, 4, 4, 512)  # three 2x2 pools before block 4
    assert model.trainable_variables == [] and len(model.non_trainable_variables) == 20


def test_npz_weights_load_exactly(tmp_path):
    weights = _random_weights("conv4_3")
    np.savez(tmp_path / "vgg_face.npz", **weights)
    model = load_vgg_face_weights(VGGFace(), tmp_path / "vgg_face.npz")
    _assert_loaded(model, weights)


def test_keras_vggface_h5_weights_load_exactly_and_top_layers_are_ignored(tmp_path):
    weights = _random_weights("conv3_3")
    _write_keras_vggface_h5(tmp_path / "rcmalli_vggface_tf_vgg16.h5", weights)
    model = load_vgg_face_weights(VGGFace("conv3_3"), tmp_path / "rcmalli_vggface_tf_vgg16.h5")
    _assert_loaded(model, weights)


def test_features_match_a_numpy_preprocessed_reference(tmp_path):
    weights = _random_weights("conv1_2")
    np.savez(tmp_path / "w.npz", **weights)
    model = load_vgg_face_weights(VGGFace("conv1_2"), tmp_path / "w.npz")
    images = np.random.uniform(-1, 1, (2, 8, 8, 3)).astype(np.float32)
    # keras-vggface preprocess_input(version=1): 0-255, RGB -> BGR, minus BGR means.
    x = (images + 1.0) * 127.5
    x = x[..., ::-1] - np.array([93.5940, 104.7624, 129.1863], np.float32)
    for name in ("conv1_1", "conv1_2"):
        x = tf.nn.relu(
            tf.nn.conv2d(x, weights[f"{name}/kernel"], 1, "SAME") + weights[f"{name}/bias"]
        )
    np.testing.assert_allclose(model(images), x, rtol=1e-4, atol=1e-3)


def test_missing_layer_is_reported_with_file_and_layer(tmp_path):
    weights = _random_weights("conv2_2")
    np.savez(tmp_path / "short.npz", **weights)
    with pytest.raises(BadModelFileError, match=r"short\.npz.*conv3_1/kernel"):
        load_vgg_face_weights(VGGFace("conv3_1"), tmp_path / "short.npz")


def test_mismatched_shape_is_reported(tmp_path):
    weights = _random_weights("conv1_2")
    weights["conv1_2/bias"] = np.zeros(32, np.float32)
    _write_keras_vggface_h5(tmp_path / "bad.h5", weights)
    with pytest.raises(BadModelFileError, match=r"bad\.h5.*conv1_2/bias.*\(32,\).*\(64,\)"):
        load_vgg_face_weights(VGGFace("conv1_2"), tmp_path / "bad.h5")


@pytest.mark.parametrize("name", ["garbage.npz", "garbage.h5", "weights.pt"])
def test_unreadable_or_unknown_files_raise_bad_model_file(tmp_path, name):
    (tmp_path / name).write_bytes(b"not a weights file")
    with pytest.raises(BadModelFileError, match=name.replace(".", r"\.")):
        load_vgg_face_weights(VGGFace("conv1_1"), tmp_path / name)


def test_pickled_npz_is_refused(tmp_path):
    np.savez(tmp_path / "pickled.npz", **{"conv1_1/kernel": np.array([object()], dtype=object)})
    with pytest.raises(BadModelFileError, match="pickled.npz"):
        load_vgg_face_weights(VGGFace("conv1_1"), tmp_path / "pickled.npz")


def test_unknown_output_layer_is_a_config_error():
    with pytest.raises(BadConfigError, match="conv6_1"):
        VGGFace("conv6_1")


def test_config_round_trip_keeps_the_layer():
    model = VGGFace("conv2_1")
    clone = config_round_trip(model)
    assert clone.output_layer == "conv2_1" and clone(tf.zeros([1, 8, 8, 3])).shape == (1, 4, 4, 128)
    serialized = keras.saving.serialize_keras_object(model)
    assert keras.saving.deserialize_keras_object(serialized).output_layer == "conv2_1"


def _torch_state_dict(last_layer):
    """Random weights in the PyTorch vgg_face_dag layout (OIHW kernels, RGB input)."""
    import torch

    return {
        key.replace("/kernel", ".weight").replace("/bias", ".bias"): torch.from_numpy(
            value.transpose(3, 2, 0, 1).copy() if value.ndim == 4 else value
        )
        for key, value in _random_weights(last_layer).items()
    }


def test_converted_torch_weights_reproduce_the_torch_network(tmp_path):
    import torch
    from torch.nn import functional as F

    state = _torch_state_dict("conv1_2")
    np.savez(
        tmp_path / "vgg.npz",
        **vgg_face_convert.from_torch_state_dict(
            {k: v.numpy() for k, v in state.items()}, "vgg_face_dag.pth"
        ),
    )
    model = load_vgg_face_weights(VGGFace("conv1_2"), tmp_path / "vgg.npz")
    images = np.random.uniform(-1, 1, (2, 8, 8, 3)).astype(np.float32)
    # The MatConvNet/PyTorch convention: RGB 0-255 minus the RGB means, NCHW.
    x = torch.from_numpy(
        (images + 1.0) * 127.5 - np.array([129.1863, 104.7624, 93.5940], np.float32)
    )
    x = x.permute(0, 3, 1, 2)
    for name in ("conv1_1", "conv1_2"):
        x = F.relu(F.conv2d(x, state[f"{name}.weight"], state[f"{name}.bias"], padding=1))
    np.testing.assert_allclose(model(images), x.permute(0, 2, 3, 1).numpy(), rtol=1e-4, atol=1e-3)


def test_convert_command_writes_a_loadable_npz_and_rejects_other_files(tmp_path, capsys):
    import torch

    torch.save(_torch_state_dict("conv2_1"), tmp_path / "vgg_face_dag.pth")
    convert_vgg_face.main(
        ["convert", str(tmp_path / "vgg_face_dag.pth"), str(tmp_path / "out.npz")]
    )
    assert "conv1_1, conv1_2, conv2_1" in capsys.readouterr().out
    load_vgg_face_weights(VGGFace("conv2_1"), tmp_path / "out.npz")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(BadModelFileError, match=r"junk\.pth"):
        convert_vgg_face.main(["convert", str(tmp_path / "junk.pth"), str(tmp_path / "x.npz")])
    torch.save({"fc8.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    with pytest.raises(BadModelFileError, match="conv1_1"):
        convert_vgg_face.main(["convert", str(tmp_path / "other.pth"), str(tmp_path / "x.npz")])
    assert not (tmp_path / "x.npz").exists()


def _npz_cases():
    """Malformed `.npz` contents -> the key the error must name."""
    good = _random_weights("conv1_2")
    strings = dict(good, **{"conv1_2/bias": np.array(["x"] * 64)})
    rank = dict(good, **{"conv1_1/kernel": good["conv1_1/kernel"][0]})
    missing = {k: v for k, v in good.items() if k != "conv1_1/bias"}
    nan = dict(good, **{"conv1_2/kernel": np.full((3, 3, 64, 64), np.nan, np.float32)})
    return {
        "strings": (strings, "conv1_2/bias", "holds <U1 values"),
        "object": (
            {**good, "conv1_1/kernel": np.array([{"a": 1}], dtype=object)},
            "conv1_1/kernel",
            "allow_pickle",
        ),
        "rank": (rank, "conv1_1/kernel", r"shape \(3, 3, 64\), expected \(3, 3, 3, 64\)"),
        "missing": (missing, "conv1_1/bias", "no weight"),
        "nan": (nan, "conv1_2/kernel", "NaN"),
    }


@pytest.mark.parametrize("case", sorted(_npz_cases()))
def test_malformed_npz_contents_name_file_and_key(tmp_path, case):
    arrays, key, problem = _npz_cases()[case]
    path = tmp_path / f"{case}.npz"
    np.savez(path, **arrays)
    with pytest.raises(BadModelFileError) as raised:
        load_vgg_face_weights(VGGFace("conv1_2"), path)
    assert raised.value.source == str(path)
    assert key in raised.value.problem
    assert re.search(problem, raised.value.problem), raised.value.problem


def test_a_bare_npy_under_an_npz_name_is_refused(tmp_path):
    path = tmp_path / "array.npz"
    with open(path, "wb") as stream:
        np.save(stream, np.zeros(3))
    with pytest.raises(BadModelFileError, match="single .npy array"):
        load_vgg_face_weights(VGGFace("conv1_1"), path)


def _h5_wrong_groups(path, case):
    weights = _random_weights("conv1_1")
    _write_keras_vggface_h5(path, weights)
    with h5py.File(path, "a") as file:
        if case == "listed_layer_missing":
            file.attrs["layer_names"] = [b"conv1_1", b"conv0_9"]
            return "conv0_9"
        if case == "weight_is_a_group":
            del file["conv1_1"]["conv1_1/bias:0"]
            file["conv1_1"].create_group("conv1_1/bias:0")
            return "conv1_1/bias:0"
        if case == "layer_names_not_names":
            file.attrs["layer_names"] = np.arange(3)
            return "layer_names"
        if case == "string_dataset":
            del file["conv1_1"]["conv1_1/bias:0"]
            file["conv1_1"]["conv1_1/bias:0"] = np.array([b"x"] * 64)
            return "conv1_1/bias"
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case", ["listed_layer_missing", "weight_is_a_group", "layer_names_not_names", "string_dataset"]
)
def test_h5_with_wrong_groups_names_file_and_key(tmp_path, case):
    path = tmp_path / f"{case}.h5"
    key = _h5_wrong_groups(path, case)
    with pytest.raises(BadModelFileError) as raised:
        load_vgg_face_weights(VGGFace("conv1_1"), path)
    assert raised.value.source == str(path)
    assert key in raised.value.problem, raised.value.problem


@pytest.mark.parametrize(
    "case, key",
    [
        ("kernel_rank", "conv1_1.weight"),
        ("no_bias", "conv1_1.bias"),
        ("bias_shape", "conv1_2.bias"),
        ("bool_kernel", "conv1_2.weight"),
        ("string_value", "conv1_1.bias"),
    ],
)
def test_pth_with_wrong_contents_names_file_and_key(tmp_path, case, key):
    import torch

    state = _torch_state_dict("conv1_2")
    if case == "kernel_rank":
        state["conv1_1.weight"] = state["conv1_1.weight"][0]
    elif case == "no_bias":
        del state["conv1_1.bias"]
    elif case == "bias_shape":
        state["conv1_2.bias"] = torch.zeros(3)
    elif case == "bool_kernel":
        state["conv1_2.weight"] = state["conv1_2.weight"] > 0
    else:
        state["conv1_1.bias"] = "not a tensor"
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(BadModelFileError) as raised:
        convert_vgg_face.main(["convert", str(tmp_path / "bad.pth"), str(tmp_path / "out.npz")])
    assert raised.value.source == str(tmp_path / "bad.pth")
    assert repr(key) in raised.value.problem, raised.value.problem
    assert not (tmp_path / "out.npz").exists()
