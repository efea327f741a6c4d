"""Outputs that cannot be written (full disk, a file in the way, read-only): one line naming
the file, the last good checkpoint or backup left whole, no partial file, never a signal."""

import json
import os
import sys

import keras
import numpy as np
import pytest

from gfrnet_tf.errors import BadOutputError
from gfrnet_tf.io.paths import make_output_dir
from support import run_checkout

UNITS = 2000  # Dense(3 -> 2000) + Adam state: a ~45 KB weights file
LIMIT = 20_000  # RLIMIT_FSIZE for the second save: smaller than one weights file

# Saves once, then again under a file-size limit (the disk is "full"). SIGXFSZ is ignored so
# that a write past the limit fails with EFBIG, as on a full disk, instead of killing.
_CHILD = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
import keras
from absl import app
from gfrnet_tf.apps.common import main_wrapper
from gfrnet_tf.training import callbacks

def main(argv):
    kind, directory, units, limit = argv[1], argv[2], int(argv[3]), int(argv[4])
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(units)])
    model.compile(optimizer="adam")
    if kind == "step":
        saver = callbacks.StepCheckpoint(directory)
    else:
        saver = callbacks.BackupAndRestore(directory, save_freq="epoch", double_checkpoint=True,
                                           delete_checkpoint=False)
    saver.set_model(model)
    saver.set_params({"steps": 5, "epochs": 2, "verbose": 0})
    for epoch in range(2):
        if epoch:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        saver.on_epoch_begin(epoch)
        saver.on_epoch_end(epoch)

app.run(main_wrapper(main))
"""


def _one_error_line(result):
    assert result.returncode == 1, result.stderr[-3000:]  # not -11 (SIGSEGV) nor -25 (SIGXFSZ)
    assert "Traceback" not in result.stderr and "{{function_node" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    return errors[0]


def _loads(path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(UNITS)])
    model.compile(optimizer="adam")
    model.load_weights(path)
    return model


@pytest.mark.slow
def test_a_full_disk_during_a_step_checkpoint_is_one_line_and_keeps_the_last_one(tmp_path):
    directory = tmp_path / "checkpoints"
    result = run_checkout(
        sys.executable, "-c", _CHILD, "step", str(directory), str(UNITS), str(LIMIT)
    )
    path = directory / "step-00000010.weights.h5"
    assert _one_error_line(result) == f"error: {path}: cannot write: File too large"
    assert sorted(os.listdir(directory)) == ["step-00000005.weights.h5"]  # no partial file
    assert os.path.getsize(directory / "step-00000005.weights.h5") > LIMIT
    _loads(directory / "step-00000005.weights.h5")


@pytest.mark.slow
def test_a_full_disk_during_a_backup_is_one_line_and_keeps_the_previous_state(tmp_path):
    directory = tmp_path / "backup"
    result = run_checkout(
        sys.executable, "-c", _CHILD, "backup", str(directory), str(UNITS), str(LIMIT)
    )
    assert _one_error_line(result) == (
        f"error: {directory / 'latest.weights.h5'}: cannot write the backup: File too large"
    )
    assert sorted(os.listdir(directory)) == ["latest.weights.h5", "training_metadata.json"]
    assert json.loads((directory / "training_metadata.json").read_text())["epoch"] == 1
    _loads(directory / "latest.weights.h5")


def test_output_folders_that_cannot_be_written_are_refused_by_name(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    with pytest.raises(BadOutputError, match="is a file, not a folder") as raised:
        make_output_dir(str(blocker))
    assert raised.value.source == str(blocker)
    with pytest.raises(BadOutputError, match="Not a directory"):
        make_output_dir(str(blocker / "below"))
    if os.geteuid() == 0:  # root writes through permission bits; sysfs refuses new files
        read_only = "/sys"
    else:
        read_only = tmp_path / "read-only"
        read_only.mkdir(mode=0o555)
    with pytest.raises(BadOutputError, match="cannot write here") as raised:
        make_output_dir(str(read_only))
    assert raised.value.source == str(read_only)
    for create in (False, True):
        with pytest.raises(BadOutputError, match="is a file, not a folder"):
            make_output_dir(str(blocker), create=create)
        with pytest.raises(BadOutputError, match="Not a directory"):
            make_output_dir(str(blocker / "below" / "deeper"), create=create)
        with pytest.raises(BadOutputError, match="cannot write here"):
            make_output_dir(os.path.join(read_only, "new"), create=create)
    new = tmp_path / "new" / "run"
    assert make_output_dir(str(new), create=False) == str(new)
    assert not (tmp_path / "new").exists()  # only checked, through tmp_path
    assert make_output_dir(str(new)) == str(new)
    assert os.listdir(new) == []  # the probe file is gone


def test_weights_round_trip_through_memory(tmp_path):
    from gfrnet_tf.training.callbacks import write_weights

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)])
    model.compile(optimizer="adam")
    write_weights(model, str(tmp_path / "w.weights.h5"))
    reference = tmp_path / "reference.weights.h5"
    model.save_weights(reference)  # Keras writing to disk itself
    copy = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)])
    copy.load_weights(tmp_path / "w.weights.h5")
    for ours, theirs in zip(copy.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    assert sorted(os.listdir(tmp_path)) == ["reference.weights.h5", "w.weights.h5"]


@pytest.mark.slow
def test_train_with_a_workdir_that_is_a_file_is_one_line(tmp_path):
    from gfrnet_tf.data import encode_pair, write_shard

    image, points = np.zeros((32, 32, 3), np.uint8), np.full((68, 2), 16.0, np.float32)
    write_shard(tmp_path / "train-0.tfrecord", [encode_pair(image, image, points, points)] * 2)
    workdir = tmp_path / "run"
    workdir.write_text("not a folder")
    result = run_checkout(
        sys.executable,
        "-m",
        "gfrnet_tf.apps.train",
        "--config=smoke",
        f"--workdir={workdir}",
        f"--data={tmp_path}/train-*.tfrecord",
        "--synthetic_pose",
    )
    assert _one_error_line(result) == f"error: {workdir}: is a file, not a folder"
    assert workdir.read_text() == "not a folder"


def test_what_a_killed_save_left_behind_is_removed_at_the_next_start(tmp_path):
    from gfrnet_tf.training.callbacks import BackupAndRestore, StepCheckpoint

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)])
    model.compile(optimizer="adam")
    for directory in (tmp_path / "checkpoints", tmp_path / "backup"):
        directory.mkdir()
        (directory / ".step-00000005.weights.h5.x1y2.tmp").write_bytes(b"half")
        (directory / "keep.txt").write_text("not ours to remove")
    saver, backup = (
        StepCheckpoint(str(tmp_path / "checkpoints")),
        BackupAndRestore(str(tmp_path / "backup")),
    )
    for callback in (saver, backup):
        callback.set_model(model)
        callback.on_train_begin()
    assert os.listdir(tmp_path / "checkpoints") == os.listdir(tmp_path / "backup") == ["keep.txt"]
