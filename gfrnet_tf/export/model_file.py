"""Loading the trained model to export or run: a `.keras` file or a training checkpoint."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import h5py
import keras
import ml_collections

from gfrnet_tf.errors import BadModelFileError, first_line
from gfrnet_tf.models.gfrnet import GFRNet, build_gfrnet
from gfrnet_tf.training.callbacks import latest_checkpoint

CHECKPOINT_SUFFIX = ".weights.h5"


def load_model_for_export(path) -> GFRNet:
    """A built `GFRNet` from a `.keras` file, a `step-N.weights.h5` checkpoint or a workdir.

    A workdir (or its `checkpoints/` folder) means its latest checkpoint; a checkpoint is
    rebuilt from the run's `config.json` (next to `checkpoints/`) and then gets its
    weights. `.keras` files load with Keras safe mode, which refuses pickled lambdas, so an
    untrusted file cannot run code. Any failure is one `BadModelFileError` naming the file.
    """
    path = Path(path)
    if path.is_dir():
        path = _latest_in(path)
    if not path.is_file():
        raise BadModelFileError(path, "no such file")
    if path.name.endswith(CHECKPOINT_SUFFIX):
        model = _load_checkpoint(path)
    elif path.suffix == ".keras":
        model = _load_keras_file(path)
    else:
        raise BadModelFileError(
            path, f"expected a .keras file, a step-N{CHECKPOINT_SUFFIX} checkpoint or a workdir")
    if not isinstance(model, GFRNet):
        raise BadModelFileError(path, f"holds a {type(model).__name__}, not a GFRNet")
    return model


def _latest_in(directory: Path) -> Path:
    for folder in (directory / "checkpoints", directory):
        checkpoint = latest_checkpoint(str(folder))
        if checkpoint:
            return Path(checkpoint)
    raise BadModelFileError(directory, f"no step-N{CHECKPOINT_SUFFIX} checkpoint in this folder")


def _load_keras_file(path: Path):
    if not zipfile.is_zipfile(path):
        raise BadModelFileError(path, "not a .keras archive (it is not a zip file)")
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    # Keras raises ValueError, TypeError, KeyError, OSError... for the many ways a file
    # can be wrong; all of them mean the same thing to the user.
    except Exception as error:  # noqa: BLE001
        raise BadModelFileError(path, f"cannot load the model: {first_line(error)}") from error


def _load_checkpoint(path: Path):
    config_path = next(
        (folder / "config.json" for folder in (path.parent.parent, path.parent)
         if (folder / "config.json").is_file()), None)
    if config_path is None:
        raise BadModelFileError(path, "no config.json of the training run next to checkpoints/")
    try:
        config = ml_collections.ConfigDict(json.loads(config_path.read_text(encoding="utf-8")))
        size = config.input.image_size
    except (OSError, ValueError, AttributeError, KeyError) as error:
        raise BadModelFileError(config_path, f"not a training config: {first_line(error)}") from None
    model = build_gfrnet(config.model)
    model.build({"degraded": (None, size, size, 3), "guide": (None, size, size, 3)})
    if not h5py.is_hdf5(path):
        raise BadModelFileError(path, "not an HDF5 weights file")
    try:
        model.load_weights(path)
    except Exception as error:  # noqa: BLE001  (as above: h5py and Keras raise many types)
        raise BadModelFileError(path, f"weights do not fit {config_path}: {first_line(error)}") from error
    return model
