"""gfrnet-convert-vgg-face: PyTorch VGG-Face weights to the `.npz` the perceptual loss reads.

    gfrnet-convert-vgg-face vgg_face_dag.pth vgg_face.npz

Then train with `--config.model.vgg_face_weights=vgg_face.npz`. The state dict is read with
`torch.load(weights_only=True)`: tensors only, no pickled code. PyTorch is needed only
here (the `convert` extra).
"""

from __future__ import annotations

import numpy as np

from gfrnet_tf.apps.common import make_run
from gfrnet_tf.errors import BadModelFileError, optional_dependency
from gfrnet_tf.io.atomic import atomic_writer


def main(argv):
    with optional_dependency():  # only this converter needs PyTorch
        import torch

    from gfrnet_tf.models.vgg_face import LAYER_NAMES
    from gfrnet_tf.models.vgg_face_convert import from_torch_state_dict

    source, target = argv[1:]
    try:
        state_dict = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 (torch raises many types for a foreign file)
        raise BadModelFileError(source, f"cannot read as a PyTorch state dict: {error}") from None
    if not isinstance(state_dict, dict):
        raise BadModelFileError(source, f"holds a {type(state_dict).__name__}, not a state dict")
    # Anything that is not a tensor of numbers fails the converter's check, by key.
    values = {
        k: (v.detach().float() if v.is_floating_point() else v.detach()).numpy()
        if isinstance(v, torch.Tensor)
        else v
        for k, v in state_dict.items()
    }
    arrays = from_torch_state_dict(values, source)
    with atomic_writer(target) as stream:
        np.savez(stream, **arrays)
    print(f"{target}: {', '.join(n for n in LAYER_NAMES if f'{n}/kernel' in arrays)}")


run = make_run(main, arguments=("IN.pth", "OUT.npz"))

if __name__ == "__main__":
    run()
