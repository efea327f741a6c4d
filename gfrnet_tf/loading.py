"""One loader for every form a trained GFRNet takes, with the image size it was made for.

| what `path` is | format | image size from |
| --- | --- | --- |
| a training workdir (or its `checkpoints/`) | keras | latest `step-N.weights.h5`, `config.json` |
| `step-N.weights.h5` | keras | the run's `config.json` (next to `checkpoints/`) |
| `.keras` file | keras | unknown (a Keras model takes any suitable size) |
| SavedModel folder, or TF Serving's `NAME/<version>/` | savedmodel | the size the export recorded |
| `.tflite` file | tflite | its fixed input shape |

Checkpoints are the training run's; `.keras` files and exports are what `gfrnet-export`
makes from them (docs/ARCHITECTURE.md, "Artefacts"). Inference never needs the perceptual
network, so a checkpoint whose config names a VGG-Face file loads without that file.
A Keras model loads under any `policy` (`gfrnet_tf.precision`; its weights are float32
whatever it trained in); an export computes in the precision it was exported with.
Every failure is one `BadModelFileError` naming the file.
"""

from __future__ import annotations

import dataclasses
import json
import zipfile
from pathlib import Path
from typing import Any

import h5py
import keras
import ml_collections
from absl import logging

from gfrnet_tf import precision, runs
from gfrnet_tf.errors import BadConfigError, BadModelFileError, GFRNetError, first_line
from gfrnet_tf.export.contract import saved_model_size, tflite_size
from gfrnet_tf.export.tflite import litert_interpreter
from gfrnet_tf.io.images import MAX_IMAGE_SIZE
from gfrnet_tf.models.gfrnet import GFRNet, build_gfrnet, trained_settings
from gfrnet_tf.runs import CHECKPOINT_SUFFIX, RunFolder

# A .keras archive's config.json and metadata.json are kilobytes; their declared size is
# checked before Keras decompresses them (a small file can unpack to gigabytes).
MAX_KERAS_JSON_BYTES = 16 * 2**20


@dataclasses.dataclass
class TrainedModel:
    """A loaded artefact: `model` is the `GFRNet` ("keras"), the loaded SavedModel object
    ("savedmodel") or a LiteRT interpreter ("tflite"); `config` is the training config
    when the artefact came with one."""

    source: Path
    format: str
    image_size: int | None
    model: Any
    config: ml_collections.ConfigDict | None = None


def load_trained(path, policy=precision.FLOAT32) -> TrainedModel:
    """Whatever `path` is (see the module table), loaded; `BadModelFileError` if unusable.

    `policy`: the Keras dtype policy a Keras model computes in; an export refuses any
    other than float32 (it computes in the precision it was exported with)."""
    path = Path(path)
    if not path.exists():
        raise BadModelFileError(path, "no such file or directory")
    export = path if path.suffix == ".tflite" else _saved_model_dir(path)
    if export is not None and policy != precision.FLOAT32:
        raise BadModelFileError(
            export,
            f"an export computes in the precision it was exported with, not {policy}: "
            "compute precision applies to checkpoints and .keras files",
        )
    if path.suffix == ".tflite":
        return _guarded(path, _load_tflite)
    if export is not None:
        return _guarded(export, _load_saved_model)
    return load_gfrnet(path, policy)


def load_gfrnet(path, policy=precision.FLOAT32) -> TrainedModel:
    """A trained Keras `GFRNet` from a workdir, a checkpoint or a `.keras` file, its networks
    computing under `policy`."""
    path = Path(path)
    if path.is_dir():
        path = latest_checkpoint_in(path)
    if not path.is_file():
        raise BadModelFileError(path, "no such file")
    precision.check_precision(policy, "policy")
    if path.name.endswith(CHECKPOINT_SUFFIX):
        loaded = _load_checkpoint(path, policy)
    elif path.suffix == ".keras":
        loaded = TrainedModel(path, "keras", None, _load_keras_file(path, policy))
    else:
        raise BadModelFileError(
            path,
            f"expected a .keras file, a step-N{CHECKPOINT_SUFFIX} checkpoint, a workdir, "
            "a SavedModel or a .tflite file",
        )
    if not isinstance(loaded.model, GFRNet):
        raise BadModelFileError(path, f"holds a {type(loaded.model).__name__}, not a GFRNet")
    return loaded


def latest_checkpoint_in(directory) -> Path:
    """The highest-step checkpoint of a workdir or of its `checkpoints/` folder."""
    directory = Path(directory)
    for folder in (RunFolder(directory).checkpoints, directory):
        checkpoint = runs.latest_checkpoint(folder)
        if checkpoint:
            return Path(checkpoint)
    raise BadModelFileError(directory, f"no step-N{CHECKPOINT_SUFFIX} checkpoint in this folder")


def run_config(checkpoint: Path) -> tuple[Path, ml_collections.ConfigDict]:
    """The training config of a checkpoint: its run's `config.json`, checked."""
    path = RunFolder.of_checkpoint(checkpoint).config_file
    if not path.is_file():
        raise BadModelFileError(
            checkpoint, f"no {runs.CONFIG_FILE} of the training run next to {runs.CHECKPOINT_DIR}/"
        )
    try:
        config = runs.read_config_file(path)
    except GFRNetError as error:  # a BadConfigError: it is the model's file here
        raise BadModelFileError(path, f"not a training config: {error.problem}") from None
    size = config.get("input", {}).get("image_size")
    if isinstance(size, bool) or not isinstance(size, int) or not 8 <= size <= MAX_IMAGE_SIZE:
        raise BadModelFileError(
            path, f"input.image_size must be an integer 8 .. {MAX_IMAGE_SIZE}, got {size!r}"
        )
    if not isinstance(config.get("model"), ml_collections.ConfigDict):
        raise BadModelFileError(path, "no model section")
    return path, config


def _load_checkpoint(path: Path, policy: str) -> TrainedModel:
    config_path, config = run_config(path)
    if not h5py.is_hdf5(path):
        raise BadModelFileError(path, "not an HDF5 weights file")
    _check_trained_settings(path, config_path, config.model)
    size = config.input.image_size
    model_config = config.model.to_dict()
    model_config["vgg_face_weights"] = ""  # training-only: inference never runs it
    try:
        with precision.policy_scope(policy):
            model = build_gfrnet(model_config)
    except Exception as error:  # noqa: BLE001  (any config value the builder refuses)
        raise BadModelFileError(
            config_path, f"cannot build its model: {first_line(error)}"
        ) from None
    try:
        model.build({"degraded": (None, size, size, 3), "guide": (None, size, size, 3)})
    except BadConfigError as error:  # a size its networks cannot halve often enough
        raise BadModelFileError(config_path, f"input.image_size {size}: {error.problem}") from None
    try:
        _load_weights_without_perceptual(model, path)
    except Exception as error:
        raise BadModelFileError(
            path, f"weights do not fit {config_path}: {first_line(error)}"
        ) from error
    return TrainedModel(path, "keras", size, model, config)


def _check_trained_settings(checkpoint: Path, config_path: Path, model_config) -> None:
    """The settings `checkpoint` records it was trained with against the run's config.json:
    an edited `flow_mode` or `variant` would load and silently change every output. A
    checkpoint from before the record loads with a warning, config.json trusted."""
    try:
        with h5py.File(checkpoint, "r") as stored:
            recorded = stored.attrs.get(runs.TRAINED_SETTINGS_ATTRIBUTE)
    except OSError as error:
        raise BadModelFileError(checkpoint, f"not a readable HDF5 file: {first_line(error)}")
    if recorded is None:
        logging.warning(
            "%s records no training settings (written before checkpoints did): trusting %s",
            checkpoint,
            config_path,
        )
        return
    try:
        recorded = json.loads(recorded)
        configured = trained_settings(model_config)
    except (ValueError, TypeError) as error:
        raise BadModelFileError(
            checkpoint, f"its record of its training settings is unreadable: {first_line(error)}"
        ) from None
    for key in sorted(set(recorded) | set(configured)):
        if recorded.get(key) != configured.get(key):
            raise BadModelFileError(
                config_path,
                f"model.{key} is {configured.get(key)!r}, but {checkpoint.name} was trained "
                f"with {recorded.get(key)!r}: set it back (the weights compute something else "
                "with another value)",
            )


def _load_weights_without_perceptual(model: GFRNet, path: Path) -> None:
    """`model.load_weights(path)`, ignoring the frozen VGG-Face weights a run with the
    perceptual term saved (the model here was built without that network)."""
    with h5py.File(path, "r") as stored:
        has_perceptual = any("vgg_face" in name for name in _group_names(stored))
    if not has_perceptual or model.perceptual_network is not None:
        model.load_weights(path)
        return
    from keras.src.saving import saving_lib  # only for the filter below

    store = saving_lib.H5IOStore(path, mode="r")
    try:
        saving_lib._load_state(
            model,
            weights_store=store,
            assets_store=None,
            inner_path="",
            visited_saveables=set(),
            error_msgs={},
        )
    finally:
        store.close()


def _group_names(stored) -> list[str]:
    names = []
    stored.visit(names.append)
    return names


def _load_keras_file(path: Path, policy: str):
    if not zipfile.is_zipfile(path):
        raise BadModelFileError(path, "not a .keras archive (it is not a zip file)")
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.filename.endswith(".json") and info.file_size > MAX_KERAS_JSON_BYTES:
                raise BadModelFileError(
                    path,
                    f"{info.filename} unpacks to {info.file_size} bytes, more than "
                    f"{MAX_KERAS_JSON_BYTES}: not a GFRNet model file",
                )
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    # Keras raises ValueError, TypeError, KeyError, OSError... for the many ways a file
    # can be wrong; all of them mean the same thing to the user.
    except Exception as error:
        raise BadModelFileError(path, f"cannot load the model: {first_line(error)}") from error
    if isinstance(model, GFRNet) and model.recnet.dtype_policy.name != policy:
        model = _rebuilt_under(model, policy)
    return model


def _rebuilt_under(model: GFRNet, policy: str) -> GFRNet:
    """`model` with its networks computing under `policy`, same (float32) weights.

    A `.keras` file records every network's policy in its config, where it wins over the
    global policy, so the recorded policies are replaced before the model is rebuilt (the
    float32 output layers are made by the networks' constructors, not recorded)."""
    config = _with_policy(keras.saving.serialize_keras_object(model), policy)
    rebuilt = keras.saving.deserialize_keras_object(config, safe_mode=True)
    rebuilt.set_weights(model.get_weights())
    return rebuilt


def _with_policy(config, policy):
    """`config` (a serialised Keras object) with every recorded dtype policy set to `policy`."""
    if isinstance(config, list):
        return [_with_policy(item, policy) for item in config]
    if not isinstance(config, dict):
        return config
    if config.get("class_name") == "DTypePolicy":
        return {**config, "config": {**config["config"], "name": policy}}
    return {key: _with_policy(value, policy) for key, value in config.items()}


def _load_saved_model(path: Path) -> TrainedModel:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    return TrainedModel(path, "savedmodel", saved_model_size(loaded, path), loaded)


def _load_tflite(path: Path) -> TrainedModel:
    flatbuffer = path.read_bytes()
    interpreter = litert_interpreter(flatbuffer)
    return TrainedModel(path, "tflite", tflite_size(interpreter, flatbuffer, path), interpreter)


def _guarded(path: Path, load) -> TrainedModel:
    """`load(path)`, every failure one `BadModelFileError`; an export's face size bounded."""
    try:
        trained = load(path)
    except BadModelFileError:
        raise
    # TensorFlow and LiteRT raise many types for a bad file; all mean the same to a user.
    except Exception as error:
        raise BadModelFileError(path, f"cannot load the model: {first_line(error)}") from error
    if not 8 <= trained.image_size <= MAX_IMAGE_SIZE:
        raise BadModelFileError(
            path, f"records a face size of {trained.image_size}, not 8 .. {MAX_IMAGE_SIZE}"
        )
    return trained


def _saved_model_dir(path: Path) -> Path | None:
    """`path` itself, or its highest numeric version folder, if it holds a SavedModel."""
    if not path.is_dir():
        return None
    if (path / "saved_model.pb").is_file():
        return path
    versions = [p for p in path.iterdir() if p.name.isdigit() and (p / "saved_model.pb").is_file()]
    return max(versions, key=lambda p: int(p.name)) if versions else None
