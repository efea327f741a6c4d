r"""Converts PyTorch VGG-Face weights to the `.npz` that `load_vgg_face_weights` reads.

    python -m gfrnet_tf.models.vgg_face_convert vgg_face_dag.pth vgg_face.npz

The input is a PyTorch state dict with `conv1_1.weight` `[out, in, 3, 3]` /
`conv1_1.bias` ... (the layout of the widely used `vgg_face_dag.pth`, a conversion of the
official MatConvNet release). MatConvNet's VGG-Face takes RGB input, while `VGGFace` feeds
the network BGR as the Caffe release and keras-vggface do, so the input channels of
`conv1_1` are reversed; everything else is a kernel transpose to TensorFlow's HWIO.
The state dict is read with `torch.load(weights_only=True)`: tensors only, no pickled code.
"""

from __future__ import annotations

import numpy as np
from absl import app

from gfrnet_tf.errors import BadModelFileError
from gfrnet_tf.io.atomic import atomic_writer
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
        kernel = np.asarray(state_dict[f"{name}.weight"], np.float32).transpose(2, 3, 1, 0)
        if name == "conv1_1":
            kernel = kernel[:, :, ::-1, :]  # RGB-input weights -> BGR-input weights
        arrays[f"{name}/kernel"] = np.ascontiguousarray(kernel)
        arrays[f"{name}/bias"] = np.asarray(state_dict[f"{name}.bias"], np.float32)
    if not arrays:
        raise BadModelFileError(source, "no 'conv1_1.weight': not a VGG-Face state dict")
    return arrays


def main(argv):
    if len(argv) != 3:
        raise app.UsageError("usage: python -m gfrnet_tf.models.vgg_face_convert IN.pth OUT.npz")
    import torch  # only this converter needs PyTorch

    source, target = argv[1], argv[2]
    try:
        state_dict = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a missing or foreign file
        raise BadModelFileError(source, f"cannot read as a PyTorch state dict: {error}") from None
    if not isinstance(state_dict, dict):
        raise BadModelFileError(source, f"holds a {type(state_dict).__name__}, not a state dict")
    tensors = {k: v.numpy() for k, v in state_dict.items() if isinstance(v, torch.Tensor)}
    arrays = from_torch_state_dict(tensors, source)
    with atomic_writer(target) as stream:
        np.savez(stream, **arrays)
    print(f"{target}: {', '.join(n for n in LAYER_NAMES if f'{n}/kernel' in arrays)}")


if __name__ == "__main__":
    from gfrnet_tf.apps.common import make_run

    make_run(main)()
