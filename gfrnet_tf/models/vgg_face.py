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
`python -m gfrnet_tf.models.vgg_face_convert IN.pth OUT.npz`.

The network expects what keras-vggface's `preprocess_input(version=1)` produces: BGR in
0-255 minus the per-channel mean of the VGG-Face training set. `VGGFace` takes the project's
[-1, 1] RGB images and does that conversion itself.
"""

from __future__ import annotations

import h5py
import keras
import numpy as np
import tensorflow as tf
from absl import logging

from gfrnet_tf.errors import BadConfigError, BadModelFileError

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
            keras.layers.Conv2D(_FILTERS[int(name[4])], 3, padding="same", activation="relu", name=name)
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

    Raises `BadModelFileError(path, ...)` naming the missing or mismatched weight, so a wrong
    file never fails later as a shape error deep inside the training graph.
    """
    path = str(path)
    if not model.built:
        model.build((None, None, None, 3))
    if path == RANDOM_WEIGHTS:
        logging.warning("VGG-Face with random weights: the perceptual term costs what it "
                        "should and measures nothing (benchmarks only)")
        return model
    if path.endswith(".npz"):
        arrays = _read_npz(path)
    elif path.endswith((".h5", ".hdf5")):
        arrays = _read_keras_h5(path)
    else:
        raise BadModelFileError(path, "unknown VGG-Face weights format: expected .npz or .h5")
    for conv in model.conv_layers:
        conv.set_weights([
            _checked(arrays, path, f"{conv.name}/kernel", conv.kernel.shape),
            _checked(arrays, path, f"{conv.name}/bias", conv.bias.shape),
        ])
    return model


def _checked(arrays, path, key, shape):
    if key not in arrays:
        raise BadModelFileError(path, f"no weight {key!r} (needed up to the perceptual layer)")
    if tuple(arrays[key].shape) != tuple(shape):
        found = tuple(arrays[key].shape)
        raise BadModelFileError(path, f"{key!r} has shape {found}, expected {tuple(shape)}")
    return arrays[key]


def _read_npz(path):
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (OSError, ValueError) as error:  # missing, truncated, not a zip, or pickled objects
        raise BadModelFileError(path, f"cannot read as .npz: {error}") from None


def _read_keras_h5(path):
    try:
        with h5py.File(path, "r") as file:
            root = file["model_weights"] if "model_weights" in file else file
            arrays = {}
            for layer_name in _strings(root.attrs.get("layer_names", [])):
                group = root[layer_name]
                for weight_name in _strings(group.attrs.get("weight_names", [])):
                    # "conv1_1/kernel:0" -> "conv1_1/kernel"
                    short = weight_name.split("/")[-1].split(":")[0]
                    arrays[f"{layer_name}/{short}"] = np.asarray(group[weight_name])
    except (OSError, KeyError) as error:
        raise BadModelFileError(path, f"cannot read as a keras-vggface .h5 file: {error}") from None
    if not arrays:
        raise BadModelFileError(path, "no 'layer_names'/'weight_names' attributes: not Keras 2 weights")
    return arrays


def _strings(values):
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]
