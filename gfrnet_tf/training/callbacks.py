"""Callbacks for `GFRNet.fit`: stop on NaN, checkpoints named by step, TensorBoard summaries,
progress in steps.

All of them count the global step as `epoch * steps_per_epoch + batch + 1`; because the train
command resumes at epoch boundaries (`BackupAndRestore`), this stays right across restarts,
which Keras' own `TensorBoard` callback (it restarts its batch counter every `fit`) does not.

Weights are serialised in memory and then written to a temporary name and renamed
(`write_weights`): HDF5 writing straight to a disk that fills up fails, and then crashes the
process (SIGSEGV in `h5py.File.close`, measured with a small RLIMIT_FSIZE); a Python write
that fails is one `BadOutputError` and leaves the last good checkpoint as it was. The price
is one copy of the weights file in memory while it is saved.
"""

from __future__ import annotations

import contextlib
import glob
import io
import json
import os

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from gfrnet_tf import runs
from gfrnet_tf.data.images import to_uint8
from gfrnet_tf.errors import BadModelFileError, BadOutputError, TrainingDivergedError, first_line
from gfrnet_tf.io.atomic import atomic_writer
from gfrnet_tf.io.paths import make_output_dir
from gfrnet_tf.visualize import PAIR_PANELS, labelled_grid


class _GlobalStepCallback(keras.callbacks.Callback):
    """Knows the global step of the batch that just ended."""

    _epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def global_step(self, batch: int) -> int:
        return self._epoch * self.params["steps"] + batch + 1


class _WeightsBuffer(io.BytesIO):
    """An in-memory `save_weights` target (Keras checks that the name ends in `.weights.h5`)."""

    def __str__(self):
        return "memory.weights.h5"


def weights_bytes(model) -> bytes:
    """`model.save_weights` output (a `.weights.h5` file) as bytes, never touching the disk."""
    buffer = _WeightsBuffer()
    model.save_weights(buffer)
    return buffer.getvalue()


def _write_files(contents: dict) -> None:
    """Writes `{path: bytes}`, every file to a temporary name first; the renames come only
    after all of them were written, so a full disk changes none of them."""
    with contextlib.ExitStack() as stack:
        for path, data in contents.items():
            stack.enter_context(atomic_writer(path)).write(data)


def write_weights(model, path: str) -> None:
    """Saves `model`'s weights to `path` atomically; `BadOutputError(path, ...)` if it cannot."""
    try:
        _write_files({path: weights_bytes(model)})
    except OSError as error:
        raise BadOutputError(path, f"cannot write: {error.strerror or error}") from None


def _remove_temporaries(directory: str) -> None:
    """Deletes what a killed save left behind: `atomic_writer`'s dot-prefixed `.tmp` files."""
    for name in glob.glob(os.path.join(glob.escape(directory), ".*.tmp")):
        os.remove(name)


class BackupAndRestore(keras.callbacks.BackupAndRestore):
    """Keras' resume state, but a backup that does not fit the model (the run's config was
    changed between the interruption and the re-run) is a `BadModelFileError`, not a
    traceback from deep inside `fit`, and a backup that cannot be written is a
    `BadOutputError` that leaves the previous one whole (Keras writes in place)."""

    def _save_model(self):
        metadata = json.dumps({"epoch": self._current_epoch, "batch": self._last_batch_seen})
        try:
            make_output_dir(self.backup_dir)
            contents = {}
            if self.double_checkpoint:  # the copies Keras falls back on if the latest is corrupt
                for current, previous in (
                    (self._weights_path, self._prev_weights_path),
                    (self._training_metadata_path, self._prev_training_metadata_path),
                ):
                    if os.path.exists(current):
                        with open(current, "rb") as stream:
                            contents[previous] = stream.read()
            contents[self._weights_path] = weights_bytes(self.model)
            contents[self._training_metadata_path] = metadata.encode()
            _write_files(contents)
        except OSError as error:
            raise BadOutputError(
                self._weights_path, f"cannot write the backup: {error.strerror or error}"
            ) from None

    def on_train_begin(self, logs=None):
        if os.path.isdir(self.backup_dir):
            _remove_temporaries(self.backup_dir)
        try:
            super().on_train_begin(logs)
        except (ValueError, OSError, KeyError) as error:
            raise BadModelFileError(
                self.backup_dir,
                f"cannot resume from this backup (model changed since?): {first_line(error)}",
            ) from error


class StopOnNonFinite(_GlobalStepCallback):
    """Raises `TrainingDivergedError` naming the NaN/inf losses at the first bad batch.

    Put it first in the callback list: raising (rather than setting `stop_training`, as
    Keras' `TerminateOnNaN` does) ends `fit` before any later callback saves the broken
    weights, so the step checkpoints and the `BackupAndRestore` state keep the last good one.
    """

    def __init__(self, checkpoint_dir: str):
        super().__init__()
        self.checkpoint_dir = checkpoint_dir

    def on_train_batch_end(self, batch, logs=None):
        bad = sorted(name for name, value in (logs or {}).items() if not np.all(np.isfinite(value)))
        if bad:
            kept = runs.latest_checkpoint(self.checkpoint_dir) or "none yet"
            raise TrainingDivergedError(
                f"step {self.global_step(batch)}",
                f"loss {', '.join(bad)} became NaN/inf; training stopped, "
                f"last good checkpoint: {kept}",
            )


class PhaseProgress(_GlobalStepCallback):
    """One progress bar over a training phase, in steps (Keras' own bar would count each
    checkpoint interval, one `fit` epoch, as an "epoch"). `first_step` is the global step
    the phase starts after; the bar shows the latest losses and validation values."""

    SHOWN = ("g_total", "l2", "landmark", "d_global", "d_local")

    def __init__(self, title: str, first_step: int, steps: int):
        super().__init__()
        self.title, self.first_step, self.steps = title, first_step, steps
        self.bar = None
        self.shown = {}

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        if self.bar is None:
            done = epoch * self.params["steps"] - self.first_step
            self.bar = tqdm(
                total=self.steps, initial=done, desc=self.title, unit="step", dynamic_ncols=True
            )

    def on_train_batch_end(self, batch, logs=None):
        self._show(logs, "")
        self.bar.update(self.global_step(batch) - self.first_step - self.bar.n)

    def on_epoch_end(self, epoch, logs=None):
        self._show(logs, "val_")

    def on_train_end(self, logs=None):
        self.close()

    def close(self) -> None:
        """Ends the bar; also called when a callback raises, so that the bar's last line
        comes before the error line rather than after it, at interpreter exit."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def _show(self, logs, prefix: str) -> None:
        for name in self.SHOWN:
            if f"{prefix}{name}" in (logs or {}):
                self.shown[f"{prefix}{name}"] = f"{float(np.mean(logs[prefix + name])):.4g}"
        self.bar.set_postfix(self.shown, refresh=False)


class StepCheckpoint(_GlobalStepCallback):
    """Saves the weights at every epoch end as `step-N.weights.h5`, atomically, keeping `keep`.

    The weights file holds the sub-models and both optimizers' state, so it can seed a new run
    or be evaluated; resuming an interrupted run is `BackupAndRestore`'s job.
    """

    def __init__(self, directory: str, keep: int = 3):
        super().__init__()
        self.directory = directory
        self.keep = keep

    def on_train_begin(self, logs=None):
        _remove_temporaries(make_output_dir(self.directory))

    def on_epoch_end(self, epoch, logs=None):
        step = self.global_step(self.params["steps"] - 1)
        path = os.path.join(make_output_dir(self.directory), runs.checkpoint_name(step))
        write_weights(self.model, path)  # a killed or failed save never looks like a checkpoint
        for name in runs.checkpoints_in(self.directory)[: -self.keep]:
            os.remove(os.path.join(self.directory, name))


class TensorBoardLogger(_GlobalStepCallback):
    """Writes the running losses and a labelled image grid (I_d | I_g | I_w | restored | I, see
    `visualize.labelled_grid`) every N steps.

    `batch` is a fixed `(inputs, targets)` pair of numpy arrays, so successive grids show the
    same faces. Validation metrics are written at each epoch end at the same global step.
    """

    def __init__(self, log_dir: str, every_steps: int, batch, max_images: int = 4):
        super().__init__()
        self.every_steps = every_steps
        self.inputs = {name: value[:max_images] for name, value in batch[0].items()}
        self.target = batch[1]["target"][:max_images]
        self.writer = tf.summary.create_file_writer(log_dir)

    def on_train_batch_end(self, batch, logs=None):
        step = self.global_step(batch)
        if step % self.every_steps:
            return
        with self.writer.as_default(step=step):
            for name, value in (logs or {}).items():
                tf.summary.scalar(f"train/{name}", float(np.mean(value)))
            tf.summary.image("faces", self.image_grid()[np.newaxis])
        self.writer.flush()

    def on_epoch_end(self, epoch, logs=None):
        step = self.global_step(self.params["steps"] - 1)
        with self.writer.as_default(step=step):
            for name, value in (logs or {}).items():
                if name.startswith("val_") or name == "learning_rate":
                    tf.summary.scalar(name.replace("val_", "val/", 1), float(np.mean(value)))
        self.writer.flush()

    def image_grid(self) -> np.ndarray:
        """uint8 `[H, W, 3]`: one labelled row of the five images per sample."""
        outputs = self.model(self.inputs, training=False)
        # Variants without WarpNet (-W, -WG) have no warped guide: show the guide itself.
        warped = outputs.get("warped_guide", self.inputs["guide"])
        columns = [
            self.inputs["degraded"],
            self.inputs["guide"],
            warped,
            outputs["restored"],
            self.target,
        ]
        columns = [to_uint8(keras.ops.convert_to_numpy(images)).numpy() for images in columns]
        return labelled_grid(PAIR_PANELS, list(zip(*columns)))

    def on_train_end(self, logs=None):
        self.writer.flush()
