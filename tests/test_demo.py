"""gfrnet-demo end to end with a tiny budget (32 px, a few steps), and its helpers."""

from __future__ import annotations

import csv
import math
import os
import subprocess

import numpy as np
import pytest
import tensorflow as tf

from gfrnet_tf.apps.demo import config_overrides
from gfrnet_tf.apps.demo_stages import SHORT_RUN_OVERRIDES, Stages, short_run_overrides
from gfrnet_tf.data import parse_pair
from gfrnet_tf.io import load_image
from gfrnet_tf.restoration.restorer import load_restorer
from gfrnet_tf.sample import Split, degraded_pair, write_sample_dataset
from support import NATIVE_NOISE, SIZE, config_flags, installed_env


def run_demo(bin_dir, workdir, *args):
    """README command 1 as a user runs it: the installed wheel's `gfrnet-demo`, from an
    empty folder (its stages start the venv's Python, so they run the wheel too)."""
    workdir.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [str(bin_dir / "gfrnet-demo"), f"--workdir={workdir}", *args],
        capture_output=True,
        text=True,
        env=installed_env(),
        cwd=workdir,
        timeout=900,
        check=False,
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory, installed_wheel):
    workdir = tmp_path_factory.mktemp("demo") / "run"
    result = run_demo(installed_wheel[0], workdir, "--steps=2", *config_flags())
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return workdir, result.stdout, result.stderr


@pytest.mark.slow
def test_demo_reports_every_stage_and_a_table_with_numbers(demo):
    workdir, stdout, _ = demo
    for stage in range(1, 6):
        assert f"== [{stage}/5]" in stdout
    with open(workdir / "eval" / "results.csv", newline="") as handle:
        rows = {row["model"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {"degraded input", "gfrnet"}
    for column in ("psnr_4x", "psnr_8x", "landmark_error_guide", "landmark_error_warped"):
        value = float(rows["gfrnet"][column])
        assert math.isfinite(value) and value > 0.0, column
    # The baseline row needs no model: at 4x the degraded input is closer to the target
    # than at 8x, which fails if the two settings were swapped or not applied.
    assert float(rows["degraded input"]["psnr_4x"]) > float(rows["degraded input"]["psnr_8x"])
    summary = stdout.split("== done in", 1)[1]
    assert "| gfrnet |" in summary
    assert "| degraded input |" in summary and "n/a" in summary and "None" not in summary


@pytest.mark.slow
def test_demo_exports_load_and_restore_the_right_shape(demo):
    workdir, _, _ = demo
    degraded, guide = degraded_pair(SIZE)
    batch = degraded[np.newaxis], guide[np.newaxis]
    savedmodel = load_restorer(workdir / "export")
    tflite = load_restorer(next((workdir / "export").glob("*.tflite")))
    for restorer in (savedmodel, tflite):
        result = restorer(*batch)
        assert result.restored.shape == (1, SIZE, SIZE, 3) and result.restored.dtype == np.uint8
    # Same weights, two runtimes: uint8 outputs agree up to rounding.
    difference = np.abs(
        savedmodel(*batch).restored.astype(int) - tflite(*batch).restored.astype(int)
    )
    assert difference.max() <= 2


@pytest.mark.slow
def test_demo_restored_images_decode_one_file_per_thing(demo):
    workdir, stdout, _ = demo
    # An aligned crop is its one face: the restored photo, no byte-identical face file.
    assert sorted(os.listdir(workdir / "restored")) == [
        "degraded_4x_face0_compare.png",
        "degraded_4x_restored.png",
    ]
    restored = load_image(workdir / "restored" / "degraded_4x_restored.png")
    assert restored.shape == (SIZE, SIZE, 3) and restored.dtype == np.uint8
    compare = load_image(workdir / "restored" / "degraded_4x_face0_compare.png")
    # Four labelled panels, the 32 px faces shown 8x (nearest neighbour).
    assert compare.shape[1] == 4 * 8 * SIZE + 3 * 4 and compare.shape[0] > 8 * SIZE
    assert str(workdir / "restored" / "degraded_4x_restored.png") in stdout


@pytest.mark.slow
def test_demo_output_is_free_of_native_noise_and_counts_steps(demo):
    _, stdout, stderr = demo
    for noise in NATIVE_NOISE:
        assert noise not in stdout + stderr, noise
    assert "Epoch " not in stdout  # Keras' per-interval bars, which counted no steps
    # --steps=2: one 2-step data epoch; pre-training is PRETRAIN_EPOCHS of them.
    assert "training: 4 WarpNet pre-training steps, then 2 reconstruction training steps" in stdout
    assert "reconstruction training: 100%" in stderr and "2/2" in stderr


def test_bad_steps_is_one_line_error(tmp_path, installed_wheel):
    result = run_demo(installed_wheel[0], tmp_path, "--steps=0")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == "error: --steps: must be >= 1, got 0"


def test_failed_stage_stops_with_its_status_and_names_it(capfd):
    stages = Stages(total=2)
    with pytest.raises(SystemExit) as stopped:
        stages.command("missing stage", "no_such_app", ["--flag=a b"])
    assert stopped.value.code == 1  # python -m: no such module
    out, err = capfd.readouterr()
    assert "== [1/2] missing stage" in out
    assert "$ gfrnet-no_such_app '--flag=a b'" in out  # shell-quoted, ready to copy
    assert err.strip().splitlines()[-1] == (
        "error: gfrnet-no_such_app: failed with exit status 1 (stage: missing stage)"
    )
    assert "missing stage" not in stages.timings


def test_short_run_overrides_round_up_to_whole_epochs():
    def schedule(steps):
        flags = short_run_overrides(steps)
        assert flags[: len(SHORT_RUN_OVERRIDES)] == list(SHORT_RUN_OVERRIDES)
        return [flag.rsplit(".", 1)[1] for flag in flags[len(SHORT_RUN_OVERRIDES) :]]

    # The demo trains without the adversarial terms: every joint epoch is a warm-up one.
    assert schedule(1500) == [
        "steps_per_epoch=250",
        "checkpoint_every=125",
        "epochs=6",
        "reconstruction_warmup_epochs=6",
    ]
    assert schedule(600)[2:] == ["epochs=3", "reconstruction_warmup_epochs=3"]
    # Fewer steps than an epoch: one epoch of exactly that many steps.
    assert schedule(3) == [
        "steps_per_epoch=3",
        "checkpoint_every=3",
        "epochs=1",
        "reconstruction_warmup_epochs=1",
    ]


def test_config_overrides_keep_only_config_fields():
    argv = [
        "gfrnet-demo",
        "--workdir=x",
        "--config=c.py",
        "--config.model.widths=(8, 8)",
        "--steps=3",
    ]
    assert config_overrides(argv) == ["--config.model.widths=(8, 8)"]


def test_sample_shards_are_posed_copies_with_disjoint_splits(tmp_path):
    splits = (Split("train", 3, 2, 1), Split("test", 2, 1, 3))
    dataset = write_sample_dataset(tmp_path, SIZE, splits)
    records = {
        name: [parse_pair(r) for r in tf.data.TFRecordDataset(dataset.files(name))]
        for name in dataset.splits
    }
    assert [len(r) for r in records.values()] == [3, 2]
    assert {name: dataset.records(name) for name in dataset.splits} == {"train": 3, "test": 2}
    assert dataset.synthetic_pose and dataset.image_size == SIZE
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "manifest.json",
        "test-00000-of-00001.tfrecord",
        "train-00000-of-00002.tfrecord",
        "train-00001-of-00002.tfrecord",
    ]
    targets = [r["target"].numpy() for split in records.values() for r in split]
    for record in (r for split in records.values() for r in split):
        assert record["target"].shape == (SIZE, SIZE, 3)
        points = record["landmarks"].numpy()
        assert np.all((points > 0) & (points < SIZE - 1))  # the face stays in the frame
        # The guide is the unposed photo: its landmarks differ from the posed target's.
        assert np.abs(points - record["guide_landmarks"].numpy()).mean() > 0.1
    # Every record is a different pose: no two targets are the same image.
    for i, first in enumerate(targets):
        for second in targets[i + 1 :]:
            assert np.abs(first - second).mean() > 0.01
    # Deterministic: a second write gives the same bytes.
    first_bytes = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    write_sample_dataset(tmp_path, SIZE, splits)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == first_bytes
