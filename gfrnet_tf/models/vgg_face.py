"""VGG-Face (Parkhi et al., 2015) up to one conv layer: the frozen network of the perceptual loss.

The weights cannot be downloaded at run time, so the user supplies a file in one of two
formats (`load_vgg_face_weights`):

- `.npz` (the documented, simplest format): one array per weight, keys `conv1_1/kernel`
  `[3, 3, C_in, C_out]` and `conv1_1/bias` `[C_out]` ... `conv5_3/...`, TensorFlow kernel
  layout, read with `allow_pickle=False`. Layers after the chosen output layer may be absent.
- `.h5` / `.hdf5` in the keras-vggface layout (`rcmalli_vggface_tf_vgg16.h5` or the
  `_notop_` variant): a Keras 2 weights file whose root attribute `layer_names` lists groups
  `conv1_1` ... each with a `weight_names` attribute (`conv1_1/kernel:0`, `conv1_1/bias:0`)
  naming its datasets; a full-model file with a `model_weights` group also works.

`RANDOM_WEIGHTS` ("random") in place of a file keeps the initialiser's random weights: the
real network's shape and cost with features that mean nothing, for speed benchmarks only.

A PyTorch `vgg_face_dag.pth` state dict converts to the `.npz` format with
`gfrnet-convert-vgg-face IN.pth OUT.npz`.

The network expects what keras-vggface's `preprocess_input(version=1)` produces: BGR in
0-255 minus the per-channel mean of the VGG-Face training set. `VGGFace` takes the project's
[-1, 1] RGB images and does that conversion itself.
"""

from __future__ import annotations

import zipfile

import h5py
import keras
import numpy as np
import tensorflow as tf
from absl import logging

from gfrnet_tf.errors import BadConfigError, BadModelFileError, first_line

# Filters per block of the VGG16 layout; layers are named conv{block}_{i}.
_FILTERS = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}
_CONVS_PER_BLOCK = {1: 2, 2: 2, 3: 3, 4: 3, 5: 3}
LAYER_NAMES = tuple(
    f"conv{block}_{i}" for block, count in _CONVS_PER_BLOCK.items() for i in range(1, count + 1)
)

# keras-vggface utils.preprocess_input(version=1): channel means in the network's BGR order.
_BGR_MEAN = (93.5940, 104.7624, 129.1863)
# `model.vgg_face_weights` value for a randomly initialised network (benchmarks).
RANDOM_WEIGHTS = "random"


@keras.saving.register_keras_serializable(package="gfrnet_tf")
class VGGFace(keras.Model):
    """Frozen VGG-Face feature extractor: `[-1, 1]` RGB `[B, H, W, 3]` -> ReLU features.

    `output_layer` defaults to `conv4_3`: the paper's "Conv-4" read as the last (ReLU'd)
    convolution of block 4, the deepest feature map before the 4th pooling, as in Johnson
    et al.'s relu-layer perceptual losses. Any of `LAYER_NAMES` can be chosen; only the
    layers up to it are built, so the unused block 5 costs nothing.
    """

    def __init__(self, output_layer="conv4_3", **kwargs):
        super().__init__(**kwargs)
        if output_layer not in LAYER_NAMES:
            raise BadConfigError(
                "model.perceptual_layer", f"{output_layer!r} is not one of {LAYER_NAMES}"
            )
        self.output_layer = output_layer
        self.conv_layers = [
            keras.layers.Conv2D(
                _FILTERS[int(name[4])], 3, padding="same", activation="relu", name=name
            )
            for name in LAYER_NAMES[: LAYER_NAMES.index(output_layer) + 1]
        ]
        self.pool = keras.layers.MaxPooling2D(2)
        self.trainable = False

    def build(self, input_shape):
        channels = input_shape[-1]
        for conv in self.conv_layers:
            conv.build((None, None, None, channels))
            channels = conv.filters
        self.built = True

    def call(self, images):
        x = (images + 1.0) * 127.5
        x = x[..., ::-1] - tf.constant(_BGR_MEAN, x.dtype)
        for conv in self.conv_layers:
            if conv.name.endswith("_1") and conv.name != "conv1_1":  # 2x2 max-pool between blocks
                x = self.pool(x)
            x = conv(x)
        return x

    def get_config(self):
        return {**super().get_config(), "output_layer": self.output_layer}


def load_vgg_face_weights(model: VGGFace, path) -> VGGFace:
    """Fills `model`'s convolutions from a `.npz` or keras-vggface `.h5` file (module docstring),
    or leaves them random for `RANDOM_WEIGHTS`.

    Raises `BadModelFileError(path, ...)` naming the missing or malformed weight (absent, of
    strings or pickled objects, of the wrong rank or shape, not finite) or the bad group, so
    a wrong file never fails later as a shape error deep inside the training graph.
    """
    path = str(path)
    if not model.built:
        model.build((None, None, None, 3))
    if path == RANDOM_WEIGHTS:
        logging.warning(
            "VGG-Face with random weights: the perceptual term costs what it "
            "should and measures nothing (benchmarks only)"
        )
        return model
    if path.endswith(".npz"):
        arrays = _read_npz(path)
    elif path.endswith((".h5", ".hdf5")):
        arrays = _read_keras_h5(path)
    else:
        raise BadModelFileError(path, "unknown VGG-Face weights format: expected .npz or .h5")
    for conv in model.conv_layers:
        conv.set_weights(
            [
                _checked(arrays, path, f"{conv.name}/kernel", conv.kernel.shape),
                _checked(arrays, path, f"{conv.name}/bias", conv.bias.shape),
            ]
        )
    return model


def _checked(arrays, path, key, shape):
    """The weight `key` as float32, if it is there, of real numbers and of `shape`."""
    if key not in arrays:
        raise BadModelFileError(path, f"no weight {key!r} (needed up to the perceptual layer)")
    array = arrays[key]
    if array.dtype.kind not in "fiu":  # strings, bytes, booleans, compound records
        raise BadModelFileError(path, f"{key!r} holds {array.dtype} values, expected numbers")
    if tuple(array.shape) != tuple(shape):
        raise BadModelFileError(
            path, f"{key!r} has shape {tuple(array.shape)}, expected {tuple(shape)}"
        )
    array = array.astype(np.float32)
    if not np.all(np.isfinite(array)):
        raise BadModelFileError(path, f"{key!r} holds NaN or infinite values")
    return array


def _read_npz(path):
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:  # missing, truncated or not a zip
        raise BadModelFileError(path, f"cannot read as .npz: {first_line(error)}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):  # a bare .npy array under a .npz name
        raise BadModelFileError(path, "is a single .npy array, not an .npz archive of weights")
    arrays = {}
    with archive:
        for key in archive.files:
            try:
                arrays[key] = archive[key]
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
                # Pickled objects (refused), or a member that is not a valid .npy.
                raise BadModelFileError(path, f"{key!r}: {first_line(error)}") from None
    return arrays


def _read_keras_h5(path):
    try:
        with h5py.File(path, "r") as file:
            root = file["model_weights"] if "model_weights" in file else file
            arrays = {}
            for layer_name in _names(root, "layer_names", path):
                group = root.get(layer_name)
                if not isinstance(group, h5py.Group):
                    raise BadModelFileError(
                        path,
                        f"'layer_names' lists {layer_name!r}, which is not a group of the file",
                    )
                for weight_name in _names(group, "weight_names", path):
                    dataset = group.get(weight_name)
                    if not isinstance(dataset, h5py.Dataset):
                        raise BadModelFileError(
                            path,
                            f"{layer_name!r} lists weight {weight_name!r}, "
                            f"which is not a dataset of the file",
                        )
                    # "conv1_1/kernel:0" -> "conv1_1/kernel"
                    short = weight_name.split("/")[-1].split(":")[0]
                    arrays[f"{layer_name}/{short}"] = np.asarray(dataset)
    except (OSError, KeyError, TypeError, ValueError) as error:
        raise BadModelFileError(
            path, f"cannot read as a keras-vggface .h5 file: {first_line(error)}"
        ) from None
    if not arrays:
        raise BadModelFileError(
            path, "no 'layer_names'/'weight_names' attributes: not Keras 2 weights"
        )
    return arrays


def _names(node, attribute, path):
    """A Keras 2 name-list attribute (`layer_names`, `weight_names`) as strings."""
    values = np.asarray(node.attrs.get(attribute, []))
    if values.size == 0:
        return []
    if values.ndim != 1 or not all(isinstance(v, (bytes, str)) for v in values.tolist()):
        raise BadModelFileError(
            path, f"attribute {attribute!r} of {node.name!r} is not a list of names"
        )
    return [v.decode("utf8", "replace") if isinstance(v, bytes) else v for v in values.tolist()]
