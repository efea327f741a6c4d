"""What a training run's folder looks like: the one owner of its names.

    WORKDIR/config.json                      the resolved config (`gfrnet_tf.configs`)
    WORKDIR/checkpoints/step-N.weights.h5    sub-models and optimizer state, every epoch
    WORKDIR/backup/<task>/                   Keras' resume state, one per worker task
    WORKDIR/tensorboard/                     scalars and image grids

Training writes it, `gfrnet_tf.loading` and the ablation study read it, and benchmarks
make variants of it; all of them take the names from here. This module reads and writes
the run's config as JSON itself (a leaf: it imports nothing above `errors` and `io`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

import ml_collections

from gfrnet_tf.errors import BadConfigError
from gfrnet_tf.io.atomic import atomic_writer

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
BACKUP_DIR = "backup"
TENSORBOARD_DIR = "tensorboard"
CHECKPOINT_SUFFIX = ".weights.h5"
# HDF5 attribute of a step checkpoint's root: JSON of the model settings it was trained with
# (`gfrnet_tf.models.gfrnet.trained_settings`); absent in checkpoints written before it.
TRAINED_SETTINGS_ATTRIBUTE = "gfrnet_tf.trained_settings"
MAX_CONFIG_BYTES = 2**20  # a saved config.json is a few KB; refuse to parse more

_CHECKPOINT = re.compile(r"^step-(\d+)\.weights\.h5$")


def checkpoint_name(step: int) -> str:
    """`step-N.weights.h5`, zero-padded so that names sort by step."""
    return f"step-{step:08d}{CHECKPOINT_SUFFIX}"


def checkpoint_step(path) -> int | None:
    """The step of a checkpoint file name, or None for any other name."""
    match = _CHECKPOINT.match(os.path.basename(str(path)))
    return int(match.group(1)) if match else None


def checkpoints_in(directory) -> list[str]:
    """Names of the step checkpoints in `directory`, oldest first ([] if it is missing)."""
    if not os.path.isdir(directory):
        return []
    return sorted(
        (name for name in os.listdir(directory) if _CHECKPOINT.match(name)), key=checkpoint_step
    )


def latest_checkpoint(directory) -> str | None:
    """Path of the highest-step `step-N.weights.h5` in `directory`, or None."""
    names = checkpoints_in(directory)
    return os.path.join(directory, names[-1]) if names else None


@dataclasses.dataclass(frozen=True)
class RunFolder:
    """A training run's folder and the paths inside it."""

    path: Path

    def __init__(self, path):
        object.__setattr__(self, "path", Path(path))

    @classmethod
    def of_checkpoint(cls, checkpoint) -> "RunFolder":
        """The run a `step-N.weights.h5` belongs to: the folder above its own that holds a
        `config.json`, else its own folder if that does (a checkpoint copied next to its
        config), else the folder above."""
        folder = Path(checkpoint).parent
        return cls(
            next(
                (run for run in (folder.parent, folder) if (run / CONFIG_FILE).is_file()),
                folder.parent,
            )
        )

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINT_DIR

    @property
    def tensorboard(self) -> Path:
        return self.path / TENSORBOARD_DIR

    def backup(self, task: str) -> Path:
        return self.path / BACKUP_DIR / task

    def latest_checkpoint(self) -> Path | None:
        latest = latest_checkpoint(self.checkpoints)
        return Path(latest) if latest else None

    def read_config(self) -> ml_collections.ConfigDict:
        return read_config_file(self.config_file)

    def write_config(self, config: ml_collections.ConfigDict) -> None:
        write_config_file(config, self.config_file)


def read_config_file(path) -> ml_collections.ConfigDict:
    """A saved `config.json`; `BadConfigError(path)` if it is missing, huge or not a JSON object."""
    path = str(path)
    try:
        if os.path.getsize(path) > MAX_CONFIG_BYTES:
            raise BadConfigError(path, f"larger than {MAX_CONFIG_BYTES} bytes: not a saved config")
        with open(path, encoding="utf-8") as handle:
            value = json.load(handle)
    except (OSError, ValueError) as error:
        raise BadConfigError(path, f"not a JSON config: {error}") from None
    if not isinstance(value, dict):
        raise BadConfigError(path, f"not a JSON config: holds a {type(value).__name__}")
    return ml_collections.ConfigDict(value)


def write_config_file(config: ml_collections.ConfigDict, path) -> None:
    """Writes the resolved config as JSON, atomically (a killed run leaves no half file)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_writer(str(path)) as stream:
        stream.write((config.to_json_best_effort(indent=2, sort_keys=True) + "\n").encode())
