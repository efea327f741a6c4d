"""PyTorch VGG-Face weights as the arrays of the `.npz` that `load_vgg_face_weights` reads.

The command is `gfrnet-convert-vgg-face IN.pth OUT.npz` (`gfrnet_tf.apps.convert_vgg_face`).
The input is a PyTorch state dict with `conv1_1.weight` `[out, in, 3, 3]` /
`conv1_1.bias` ... (the layout of the widely used `vgg_face_dag.pth`, a conversion of the
official MatConvNet release). MatConvNet's VGG-Face takes RGB input, while `VGGFace` feeds
the network BGR as the Caffe release and keras-vggface do, so the input channels of
`conv1_1` are reversed; everything else is a kernel transpose to TensorFlow's HWIO.
"""

from __future__ import annotations

import numpy as np

from gfrnet_tf.errors import BadModelFileError
from gfrnet_tf.models.vgg_face import LAYER_NAMES


def from_torch_state_dict(state_dict, source) -> dict:
    """`{"conv1_1.weight": [O, I, 3, 3], ...}` -> `{"conv1_1/kernel": [3, 3, I, O], ...}`.

    Converts every VGG16 conv layer present, from conv1_1 on; a feature extractor only needs
    a prefix, so the first missing layer ends the list (at least conv1_1 must be there).
    """
    arrays = {}
    for name in LAYER_NAMES:
        if f"{name}.weight" not in state_dict:
            break
        weight = _array(state_dict, f"{name}.weight", source)
        if weight.ndim != 4 or weight.shape[2:] != (3, 3):
            raise BadModelFileError(
                source, f"'{name}.weight' has shape {weight.shape}, expected [out, in, 3, 3]"
            )
        bias = _array(state_dict, f"{name}.bias", source)
        if bias.shape != weight.shape[:1]:
            raise BadModelFileError(
                source, f"'{name}.bias' has shape {bias.shape}, expected ({weight.shape[0]},)"
            )
        kernel = weight.transpose(2, 3, 1, 0)
        if name == "conv1_1":
            kernel = kernel[:, :, ::-1, :]  # RGB-input weights -> BGR-input weights
        arrays[f"{name}/kernel"] = np.ascontiguousarray(kernel)
        arrays[f"{name}/bias"] = bias
    if not arrays:
        raise BadModelFileError(source, "no 'conv1_1.weight': not a VGG-Face state dict")
    return arrays


def _array(state_dict, key, source):
    """`state_dict[key]` as float32 numbers, or `BadModelFileError` naming the key."""
    if key not in state_dict:
        raise BadModelFileError(source, f"no {key!r}")
    try:
        array = np.asarray(state_dict[key])
    except (TypeError, ValueError):  # e.g. a ragged list
        raise BadModelFileError(source, f"{key!r} is not an array") from None
    if array.dtype.kind not in "fiu":
        raise BadModelFileError(source, f"{key!r} holds {array.dtype} values, expected numbers")
    return array.astype(np.float32)
