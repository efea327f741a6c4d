"""Table 1's rows as configs, the test protocols, the study's comparisons and gfrnet-ablate."""

import csv
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from gfrnet_tf import ablation
from gfrnet_tf.ablation import report as study_report
from gfrnet_tf.ablation import study
from gfrnet_tf.ablation.paper_table1 import PAPER_TABLE1
from gfrnet_tf.configs import load_config
from gfrnet_tf.configs.budget import short_run_schedule
from gfrnet_tf.configs.variants import TABLE1_ROWS, variant_config
from gfrnet_tf.data import make_dataset
from gfrnet_tf.errors import BadConfigError
from gfrnet_tf.evaluation import protocol
from gfrnet_tf.io import load_image
from gfrnet_tf.models.gfrnet import build_gfrnet
from gfrnet_tf.runs import write_config_file
from gfrnet_tf.sample import Split, write_sample_dataset
from support import checkout_env, config_flags


def test_all_seven_rows_of_table1_exist_with_the_papers_numbers():
    assert list(TABLE1_ROWS) == ["Full", "R", "-F", "-W", "-W2", "-WG", "-WG2"]
    assert set(PAPER_TABLE1) == set(TABLE1_ROWS)
    assert PAPER_TABLE1["Full"][("VggFace2", "4x")] == (28.55, 0.947)


@pytest.mark.parametrize("row, narrow", [("-W2", "-W"), ("-WG2", "-WG")])
def test_wide_rows_have_twice_the_generator_channels(row, narrow):
    base = load_config("smoke")
    wide, plain = variant_config(base, row), variant_config(base, narrow)
    assert wide.model.variant == plain.model.variant
    assert wide.model.widths == tuple(2 * w for w in plain.model.widths)
    assert wide.model.discriminator_widths == plain.model.discriminator_widths
    assert wide.train.warp_pretrain_epochs == 0  # no flow loss to pre-train on
    assert base.model.widths == (8, 16, 32, 32, 32, 32)  # the base is not modified
    wide_recnet, plain_recnet = (build_gfrnet(c.model).recnet for c in (wide, plain))
    wide_filters, plain_filters = (
        [layer.filters for layer in net._flatten_layers() if hasattr(layer, "filters")]
        for net in (wide_recnet, plain_recnet)
    )
    assert len(wide_filters) == len(plain_filters) > 10
    for wide_count, plain_count in zip(wide_filters, plain_filters):
        assert wide_count == (3 if plain_count == 3 else 2 * plain_count)  # RGB output stays 3


def test_rows_with_a_flow_loss_keep_their_pretraining_and_unknown_rows_are_refused():
    base = load_config("smoke")
    assert variant_config(base, "R").train.warp_pretrain_epochs == base.train.warp_pretrain_epochs
    assert variant_config(base, "R").model.variant == "random_guide"
    with pytest.raises(BadConfigError, match="not a Table 1 row"):
        variant_config(base, "-X")


def _input_config(size=32):
    config = load_config("smoke").input
    config.image_size, config.batch_size = size, 4
    config.degradation.blur = (0.0, 1.0, 1.5)
    config.synthetic_pose.enabled = True
    return config


@pytest.fixture(scope="module")
def sample_data(tmp_path_factory):
    directory = tmp_path_factory.mktemp("data")
    return write_sample_dataset(
        directory, 32, (Split("train", 8, 1, 1), Split("val", 4, 1, 2), Split("test", 4, 1, 3))
    )


def test_the_two_test_protocols_degrade_as_documented(sample_data):
    config = _input_config()
    drawn = protocol.setting_config(config, "8x", "drawn")
    scale_only = protocol.setting_config(config, "8x", "scale_only")
    assert drawn.degradation.mode == "seeded" and drawn.degradation.scale == (8.0,)
    assert drawn.degradation.blur == config.degradation.blur  # still drawn from the set
    got = {}
    for name, setting in (("drawn", drawn), ("scale_only", scale_only)):
        _, targets = next(iter(make_dataset(sample_data.files("test"), setting, training=False)))
        got[name] = {k: v.numpy() for k, v in targets["degradation"].items()}
    np.testing.assert_array_equal(got["drawn"]["scale"], 8.0)
    np.testing.assert_array_equal(got["scale_only"]["scale"], 8.0)
    for parameter in ("blur", "noise", "jpeg_quality"):
        np.testing.assert_array_equal(got["scale_only"][parameter], 0)
    assert any(got["drawn"][p].any() for p in ("blur", "noise", "jpeg_quality"))
    with pytest.raises(BadConfigError, match="test_protocol"):
        protocol.setting_config(config, "4x", "bicubic")


def test_paired_comparison_by_hand():
    per_image = {
        "Full": {"psnr_4x": np.array([20.0, 22.0, 21.0]), "lmd_4x": np.array([0.1, 0.2, 0.3])},
        "-WG": {"psnr_4x": np.array([19.0, 22.0, 22.0]), "lmd_4x": np.array([0.2, 0.1, 0.4])},
    }
    rows = {
        (r["measure"], r["versus"]): r
        for r in study_report.paired_comparison(per_image, "Full", ["Full", "-WG"])
    }
    psnr = rows[("psnr_4x", "-WG")]
    assert psnr["mean_difference"] == pytest.approx(0.0)
    assert psnr["standard_error"] == pytest.approx(np.std([1.0, 0.0, -1.0], ddof=1) / np.sqrt(3))
    assert psnr["win_rate"] == pytest.approx(0.5)  # one win, one tie, one loss
    lmd = rows[("lmd_4x", "-WG")]  # lower is better: Full wins on images 1 and 3
    assert lmd["mean_difference"] == pytest.approx(-0.1 / 3)
    assert lmd["win_rate"] == pytest.approx(2 / 3)


def test_a_finished_run_is_recognised_and_another_config_refused(tmp_path):
    config = ablation.row_config(load_config("smoke"), "-WG", steps=10)
    assert config.train.steps_per_epoch == 10 and config.train.epochs == 1
    assert dict(config.train.items()) | short_run_schedule(10) | {
        "warp_pretrain_epochs": 0
    } == dict(config.train.items())
    workdir = tmp_path / "no_guide"
    assert not study.finished(config, workdir)
    write_config_file(config, str(workdir / "config.json"))
    (workdir / "checkpoints").mkdir()
    (workdir / "checkpoints" / "step-00000005.weights.h5").write_bytes(b"")
    assert not study.finished(config, workdir)  # half way
    (workdir / "checkpoints" / "step-00000010.weights.h5").write_bytes(b"")
    assert study.finished(config, workdir)
    with pytest.raises(BadConfigError, match="another config.train"):
        study.finished(ablation.row_config(load_config("smoke"), "-WG", steps=20), workdir)


TINY = ["--config=smoke", *config_flags(), "--config.input.batch_size=4"]


def _ablate(data, workdir, *extra, **popen):
    command = [
        sys.executable,
        "-m",
        "gfrnet_tf.apps.ablate",
        f"--data={data}",
        f"--workdir={workdir}",
        "--steps=4",
        "--variants=Full,-WG",
        *TINY,
        *extra,
    ]
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=checkout_env(),
        **popen,
    )


def _csv(path):
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


@pytest.mark.slow
def test_ablate_end_to_end_killed_and_resumed(sample_data, tmp_path):
    workdir = tmp_path / "study"
    checkpoints = workdir / "train" / "full" / "checkpoints"
    first = _ablate(sample_data.source, workdir, "--noface_measures")
    deadline = time.monotonic() + 600
    while not (checkpoints.is_dir() and os.listdir(checkpoints)) and first.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint within 10 minutes"
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)  # mid-training: Full has 12 steps, one checkpoint every 2
    first.wait()
    assert first.returncode == -signal.SIGKILL, first.stdout.read()
    killed_at = sorted(os.listdir(checkpoints))
    assert "step-00000012.weights.h5" not in killed_at

    second = _ablate(sample_data.source, workdir, "--noface_measures")
    output = second.communicate()[0]
    assert second.returncode == 0, output
    assert "Full: training" in output and "-WG: training" in output
    assert "step-00000012.weights.h5" in os.listdir(checkpoints)
    table = _csv(workdir / "table1.csv")
    assert [row["model"] for row in table] == ["degraded input", "Full", "-WG"]
    per_image = _csv(workdir / "per_image.csv")
    assert len(per_image) == 3 * len(protocol.SETTINGS) * 4  # models x settings x test images
    paired = _csv(workdir / "paired.csv")
    assert {row["versus"] for row in paired} == {"-WG"}
    full_4x = [float(r["psnr"]) for r in per_image if r["model"] == "Full" and r["setting"] == "4x"]
    assert float(table[1]["psnr_4x"]) == pytest.approx(np.mean(full_4x))
    figure = load_image(workdir / "figure.png")
    assert figure.ndim == 3 and figure.shape[0] > 2 * 32

    third = _ablate(sample_data.source, workdir)  # with identity: nothing left to train
    output = third.communicate()[0]
    assert third.returncode == 0, output
    assert "Full: finished" in output and "-WG: finished" in output and "training in" not in output
    again = _csv(workdir / "table1.csv")
    assert [row["psnr_4x"] for row in again] == [row["psnr_4x"] for row in table]
    assert "identity_distance_4x" in again[0] and float(again[0]["identity_distance_4x"]) > 0
    text = (workdir / "table1.md").read_text()
    assert "| Full |" in text and "28.55 (0.947)" in text and "identity_distance" in text


def test_ablate_refuses_an_unknown_row_in_one_line(sample_data, tmp_path):
    process = _ablate(sample_data.source, tmp_path / "study", "--variants=Full,-Q")
    output = process.communicate()[0]
    assert process.returncode == 1
    assert (
        output.strip().splitlines()[-1].startswith("error: --variants: '-Q' is not a Table 1 row")
    )


def test_a_row_whose_training_stops_short_is_an_error(tmp_path):
    calls = []
    with pytest.raises(BadConfigError, match="training ended before step 10"):
        ablation.run_study(
            load_config("smoke"),
            None,
            tmp_path,
            10,
            ["-WG"],
            train=lambda config, workdir, dataset: calls.append(workdir),
        )
    assert calls == [str(tmp_path / "train" / "no_guide")]
