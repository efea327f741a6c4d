"""gfrnet-train: the LR schedule, NaN stop, checkpoints, TensorBoard, resume after kill -9,
and one-line errors for bad data and flags.

The callbacks are driven directly with fake logs; the command runs in subprocesses (it has
to be killed) at 32x32 with widths of 8-16.
"""

import glob
import json
import os
import re
import signal
import subprocess
import time
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from gfrnet_tf.errors import TrainingDivergedError
from gfrnet_tf.runs import latest_checkpoint
from gfrnet_tf.training.callbacks import (
    BackupAndRestore,
    StepCheckpoint,
    StopOnNonFinite,
    TensorBoardLogger,
)
from gfrnet_tf.training.schedule import StepDownOnPlateau
from gfrnet_tf.visualize import PAIR_PANELS, labelled_grid
from support import ROOT, checkout_env, run_checkout, train_command

RATES = (2e-4, 2e-5, 2e-6)


def _two_optimizers(rate=RATES[0]):
    return types.SimpleNamespace(
        g_optimizer=keras.optimizers.Adam(rate), d_optimizer=keras.optimizers.Adam(rate)
    )


def _rates(model):
    return [
        float(model.g_optimizer.learning_rate.numpy()),
        float(model.d_optimizer.learning_rate.numpy()),
    ]


def test_learning_rate_steps_down_on_both_optimizers_when_val_l2_stops_decreasing():
    model = _two_optimizers()
    schedule = StepDownOnPlateau(RATES, monitor="val_l2", patience=2)
    schedule.set_model(model)
    schedule.on_train_begin()
    # Epochs without validation (None) neither count nor reset the patience.
    val_l2 = [1.0, 0.8, 0.81, None, 0.8, 0.5, 0.6, 0.7, 0.9, 0.95, 0.97]
    expected = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2]  # index into RATES after each epoch
    for epoch, (value, stage) in enumerate(zip(val_l2, expected)):
        logs = {"l2": 3.0} if value is None else {"l2": 3.0, "val_l2": value}
        schedule.on_epoch_end(epoch, logs)
        assert _rates(model) == pytest.approx([RATES[stage]] * 2, rel=1e-6), epoch
        assert logs["learning_rate"] == pytest.approx(RATES[stage])


def test_learning_rate_stage_survives_a_restart():
    model = _two_optimizers(rate=2e-5)  # as restored from a backup
    model.d_optimizer.learning_rate = 2e-4  # even if the two disagree, the G rate decides
    schedule = StepDownOnPlateau(RATES, patience=1)
    schedule.set_model(model)
    schedule.on_train_begin()
    assert schedule.stage == 1 and _rates(model) == pytest.approx([2e-5, 2e-5])


def test_learning_rate_restored_after_train_begin_still_counts():
    model = _two_optimizers()
    schedule = StepDownOnPlateau(RATES, patience=1)
    schedule.set_model(model)
    schedule.on_train_begin()
    for optimizer in (model.g_optimizer, model.d_optimizer):  # BackupAndRestore runs later
        optimizer.learning_rate = 2e-5
    schedule.on_epoch_end(0, {"val_l2": 1.0})
    schedule.on_epoch_end(1, {"val_l2": 1.0})
    assert _rates(model) == pytest.approx([2e-6, 2e-6])


def _step_callback(callback, steps_per_epoch, epoch):
    callback.set_params({"steps": steps_per_epoch, "epochs": 10, "verbose": 0})
    callback.on_epoch_begin(epoch)
    return callback


def test_non_finite_loss_stops_naming_the_loss_step_and_last_checkpoint(tmp_path):
    (tmp_path / "step-00000008.weights.h5").write_bytes(b"")
    (tmp_path / "step-00000012.weights.h5").write_bytes(b"")
    guard = _step_callback(StopOnNonFinite(str(tmp_path)), steps_per_epoch=4, epoch=3)
    guard.on_train_batch_end(0, {"l2": 0.5, "g_total": np.float32(3.0)})
    with pytest.raises(TrainingDivergedError) as raised:
        guard.on_train_batch_end(1, {"l2": 0.5, "g_total": np.inf, "tv": np.nan})
    assert raised.value.source == "step 14"
    assert "g_total, tv" in raised.value.problem
    assert raised.value.problem.endswith(str(tmp_path / "step-00000012.weights.h5"))


def _tiny_model(units=2):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(units)])
    model.compile(optimizer="adam")
    return model


def test_step_checkpoints_are_atomic_named_by_global_step_and_pruned(tmp_path):
    model = _tiny_model()
    saver = StepCheckpoint(str(tmp_path), keep=2)
    saver.set_model(model)
    for epoch in range(3):
        _step_callback(saver, steps_per_epoch=5, epoch=epoch).on_epoch_end(epoch)
    assert sorted(os.listdir(tmp_path)) == ["step-00000010.weights.h5", "step-00000015.weights.h5"]
    assert latest_checkpoint(str(tmp_path)) == str(tmp_path / "step-00000015.weights.h5")
    expected = [w.copy() for w in model.get_weights()]
    restored = _tiny_model()
    restored.load_weights(latest_checkpoint(str(tmp_path)))
    for a, b in zip(expected, restored.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert latest_checkpoint(str(tmp_path / "missing")) is None


def test_a_backup_that_no_longer_fits_the_model_is_refused_by_name(tmp_path):
    from gfrnet_tf.errors import BadModelFileError

    backup = BackupAndRestore(str(tmp_path / "backup"), save_freq="epoch")
    backup.set_model(_tiny_model())
    backup.on_epoch_end(0)
    backup.set_model(_tiny_model(units=5))  # the config changed
    with pytest.raises(BadModelFileError, match="cannot resume from this backup") as raised:
        backup.on_train_begin()
    assert raised.value.source == str(tmp_path / "backup")


class _FakeGFRNet(keras.Model):
    """Inference outputs with known values: restored = -degraded, warped = guide / 2."""

    def call(self, inputs, training=False):
        return {"restored": -inputs["degraded"], "warped_guide": inputs["guide"] / 2}


def _events(log_dir):
    events = {}
    for path in glob.glob(os.path.join(log_dir, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                events.setdefault(value.tag, []).append((event.step, value))
    return events


def test_tensorboard_grid_shows_the_five_labelled_images_every_n_steps(tmp_path):
    rng = np.random.default_rng(0)
    images = {
        name: rng.uniform(-1, 1, (3, 8, 6, 3)).astype("float32")
        for name in ("degraded", "guide", "target")
    }
    batch = (
        {"degraded": images["degraded"], "guide": images["guide"]},
        {"target": images["target"]},
    )
    logger = TensorBoardLogger(str(tmp_path), every_steps=3, batch=batch, max_images=2)
    logger.set_model(_FakeGFRNet())
    grid = logger.image_grid()
    parts = [
        images["degraded"],
        images["guide"],
        images["guide"] / 2,
        -images["degraded"],
        images["target"],
    ]
    # Each sample one row, each image in [-1, 1] as uint8 (rounded), under the five labels.
    rows = [[np.round((part[i] + 1) * 127.5).astype(np.uint8) for part in parts] for i in (0, 1)]
    np.testing.assert_array_equal(grid, labelled_grid(PAIR_PANELS, rows))

    _step_callback(logger, steps_per_epoch=4, epoch=1)
    for batch_index in range(4):  # global steps 5..8: only step 6 is a multiple of 3
        logger.on_train_batch_end(batch_index, {"l2": 0.25 * batch_index})
    logger.on_epoch_end(1, {"l2": 1.0, "val_l2": 0.5, "learning_rate": 2e-4})
    events = _events(str(tmp_path))
    assert [step for step, _ in events["train/l2"]] == [6]
    assert tf.make_ndarray(events["train/l2"][0][1].tensor) == pytest.approx(0.25)
    assert [step for step, _ in events["faces"]] == [6]
    assert [step for step, _ in events["val/l2"]] == [8]
    assert "l2" not in events and "train/learning_rate" not in events


# ------------------------------------------------------------------- the command, end to end

TRAIN_FLAGS = [
    "--config.input.degradation.blur=(0.0,1.0)",
    "--config.input.degradation.scale=(1.0,2.0)",
    "--config.train.steps_per_epoch=2",
    "--config.train.checkpoint_every=1",
    "--config.train.summary_every=8",  # once, at the last step
    "--config.train.warp_pretrain_epochs=1",
    "--config.train.epochs=3",  # 2 + 6 rounds of 1 step: a kill after round 3 leaves 5
]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """4 training and 2 validation records of the bundled face at 32x32 (synthetic-pose guides)."""
    from gfrnet_tf.data import encode_pair, write_shard
    from gfrnet_tf.sample import load_sample

    image, points = load_sample()
    small = tf.image.resize(image, (32, 32), antialias=True).numpy().round().astype(np.uint8)
    points = points * 31 / (image.shape[0] - 1)
    record = encode_pair(small, small, points, points, identity="astronaut")
    folder = tmp_path_factory.mktemp("shards")
    write_shard(folder / "train-0.tfrecord", [record] * 4)
    write_shard(folder / "val-0.tfrecord", [record] * 2)
    return folder


def _command(workdir, shards, *extra):
    return train_command(workdir, f"--data={shards}/train-*.tfrecord", *TRAIN_FLAGS, *extra)


def _run(command, timeout=240):
    return run_checkout(*command, timeout=timeout)


def _saved_epoch(workdir):
    path = os.path.join(workdir, "backup", "local", "training_metadata.json")
    try:
        with open(path) as handle:
            return json.load(handle)["epoch"]
    except (OSError, ValueError):  # not written yet, or caught mid-write
        return 0


def _bars_started(stderr):
    """`{phase: step its progress bar started at}` (tqdm draws each bar at its start first)."""
    bars = {}
    for title, done in re.findall(r"([a-zA-Z -]+): +\d+%\|[^|]*\| *(\d+)/\d+", stderr):
        bars.setdefault(title.strip(), int(done))
    return bars


@pytest.fixture(scope="module")
def resumed(tmp_path_factory, shards):
    """Starts a run, kill -9s it once a joint-phase round is backed up, re-runs the same command."""
    workdir = tmp_path_factory.mktemp("run")
    command = _command(workdir, shards)
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=checkout_env(), cwd=ROOT
    )
    deadline = time.monotonic() + 240
    while _saved_epoch(workdir) < 3 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = _saved_epoch(workdir)
    second = _run(command)
    return types.SimpleNamespace(
        workdir=workdir, shards=shards, killed=process, killed_at=killed_at, second=second
    )


@pytest.mark.slow
def test_killed_run_resumes_at_the_saved_step_not_from_zero(resumed):
    assert resumed.killed.returncode == -signal.SIGKILL
    assert 3 <= resumed.killed_at < 8  # killed in the joint phase (rounds 3..8), mid-run
    assert resumed.second.returncode == 0, resumed.second.stderr[-3000:]
    # The plan in steps, then the progress bars: the re-run trains steps killed_at+1 .. 8
    # only; the finished WarpNet pre-training (steps 1-2) is not repeated.
    assert (
        "training: 2 WarpNet pre-training steps, then 6 joint training steps "
        "(validation every 2 steps)"
    ) in resumed.second.stdout
    assert _bars_started(resumed.second.stderr) == {"joint training": resumed.killed_at - 2}
    assert "6/6" in resumed.second.stderr
    checkpoints = sorted(os.listdir(resumed.workdir / "checkpoints"))
    assert checkpoints == [f"step-{step:08d}.weights.h5" for step in (6, 7, 8)]
    with open(resumed.workdir / "config.json") as handle:
        assert json.load(handle)["train"]["epochs"] == 3
    assert glob.glob(str(resumed.workdir / "tensorboard" / "events.out.tfevents.*"))


@pytest.mark.slow
def test_nan_loss_stops_with_one_line_and_keeps_the_last_good_checkpoint(resumed, tmp_path):
    import shutil

    workdir = tmp_path / "run"
    shutil.copytree(resumed.workdir, workdir)
    before = {
        name: (workdir / "checkpoints" / name).read_bytes()
        for name in os.listdir(workdir / "checkpoints")
    }
    # One more epoch with an infinite l2 weight: the first new step diverges.
    result = _run(
        _command(
            workdir, resumed.shards, "--config.train.epochs=4", "--config.model.loss_weights.l2=inf"
        )
    )
    assert result.returncode == 1
    last = str(workdir / "checkpoints" / "step-00000008.weights.h5")
    assert result.stderr.strip().splitlines()[-1] == (
        # The l2 weight makes both weighted sums infinite: the total and Eq. 6's reconstruction.
        f"error: step 9: loss g_total, reconstruction became NaN/inf; training stopped, "
        f"last good checkpoint: {last}"
    )
    assert "Traceback" not in result.stderr
    after = {
        name: (workdir / "checkpoints" / name).read_bytes()
        for name in os.listdir(workdir / "checkpoints")
    }
    assert after == before


def test_shards_are_checked_before_training(tmp_path, shards):
    from gfrnet_tf.errors import BadConfigError, BadRecordError
    from gfrnet_tf.training.shards import check_shards, validation_batches

    assert check_shards(str(shards / "train-*.tfrecord"), records_per_shard=1) == (
        [str(shards / "train-0.tfrecord")],
        1,
    )
    val = str(shards / "val-*.tfrecord")
    assert validation_batches(val, 2, "data") == ([str(shards / "val-0.tfrecord")], 2, 1)
    # Fewer pairs than a batch: one smaller batch of all of them.
    assert validation_batches(val, 4, "data") == ([str(shards / "val-0.tfrecord")], 2, 1)
    with pytest.raises(BadConfigError) as raised:  # 2 pairs, 3 replicas
        validation_batches(val, 4, "data", min_batch=3)
    assert raised.value.source == "data"
    assert raised.value.problem.startswith(
        "its validation split holds 2 pair(s), fewer than the 3 one validation batch needs"
    )
    with pytest.raises(BadConfigError, match="matches no TFRecord shards"):
        check_shards(str(tmp_path / "missing-*.tfrecord"))
    (tmp_path / "bad-0.tfrecord").write_bytes(b"not a TFRecord at all")
    with pytest.raises(BadRecordError) as raised:
        check_shards(str(tmp_path / "bad-*.tfrecord"), records_per_shard=1)
    assert raised.value.source == f"{tmp_path / 'bad-0.tfrecord'}: record 0"


def test_errors_become_one_line_and_exit_status_1(capsys):
    from gfrnet_tf.apps.common import main_wrapper
    from gfrnet_tf.errors import BadRecordError

    def main(argv):
        raise BadRecordError("/data/train-7.tfrecord", "record 3: truncated or corrupt shard")

    with pytest.raises(SystemExit) as exited:
        main_wrapper(main)(["gfrnet-train"])
    assert exited.value.code == 1
    assert (
        capsys.readouterr().err
        == "error: /data/train-7.tfrecord: record 3: truncated or corrupt shard\n"
    )


def test_command_refuses_an_unreadable_shard_in_one_line(tmp_path, shards):
    (tmp_path / "train-0.tfrecord").write_bytes((shards / "train-0.tfrecord").read_bytes()[:100])
    result = _run(_command(tmp_path / "run", tmp_path))
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(f"error: {tmp_path / 'train-0.tfrecord'}: record 0: states a length of ")
    )
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_command_refuses_float16_on_a_cpu_in_one_line(tmp_path, shards):
    result = _run(_command(tmp_path / "run", shards, "--precision=mixed_float16"))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(
        "error: config.train.precision: mixed_float16 needs a GPU: this CPU has no float16 "
    )
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_phases_in_steps_with_a_reconstruction_warmup_and_its_bounds():
    import ml_collections

    from gfrnet_tf.errors import BadConfigError
    from gfrnet_tf.training.fit import check_train_config, describe_phases, phase_steps

    train = ml_collections.ConfigDict(
        {
            "warp_pretrain_epochs": 2,
            "epochs": 20,
            "steps_per_epoch": 250,
            "checkpoint_every": 125,
            "summary_every": 10,
            "reconstruction_warmup_epochs": 16,
        }
    )
    plan = phase_steps(train)
    assert plan == {"warp": 500, "reconstruction": 4000, "joint": 1000}
    assert describe_phases(plan, 250) == (
        "training: 500 WarpNet pre-training steps, then 4000 reconstruction training steps, "
        "then 1000 joint training steps (validation every 250 steps)"
    )
    train.reconstruction_warmup_epochs = 20  # the demo's: no adversarial phase at all
    assert phase_steps(train) == {"warp": 500, "reconstruction": 5000}
    del train["reconstruction_warmup_epochs"]  # a config.json saved before the key existed
    assert phase_steps(train) == {"warp": 500, "joint": 5000}
    for bad in (21, -1):
        train.reconstruction_warmup_epochs = bad
        with pytest.raises(BadConfigError, match="reconstruction_warmup_epochs"):
            check_train_config(train)
