"""The wheel is the product: built, installed into a fresh venv and run from an empty folder.

prepare -> train -> evaluate -> export -> restore with a dataset folder as the only data
handle: no glob, no repeated flag, no image size given twice.
"""

import json
import os
import subprocess
import zipfile

import numpy as np
import pytest
from PIL import Image

from prepare_fixtures import _photo, _rotated
from support import NATIVE_NOISE, config_flags, installed_env

# Identities whose names hash to each split at 25 % / 25 % (gfrnet-prepare's split rule).
IDENTITIES = {
    "person0": "train",
    "person1": "train",
    "person2": "train",
    "person7": "test",
    "person9": "val",
}
TINY = [
    *config_flags(),
    "--config.train.warp_pretrain_epochs=0",
    "--config.train.epochs=1",
    "--config.train.steps_per_epoch=2",
    "--config.train.checkpoint_every=2",
    "--config.train.summary_every=2",
    "--config.input.batch_size=1",
]


def test_wheel_ships_the_presets_the_sample_and_no_checkout_paths(installed_wheel):
    _, wheel = installed_wheel
    names = zipfile.ZipFile(wheel).namelist()
    for needed in (
        "gfrnet_tf/configs/paper.py",
        "gfrnet_tf/configs/smoke.py",
        "gfrnet_tf/sample_data/astronaut_face.png",
        "gfrnet_tf/sample_data/astronaut_face_landmarks.json",
    ):
        assert needed in names, needed
    top_level = {name.split("/")[0] for name in names}
    # One package, nothing of the checkout (tests, benchmarks) and no generic top-level name.
    assert {name for name in top_level if not name.endswith(".dist-info")} == {"gfrnet_tf"}


def _run(bin_dir, cwd, command, *args):
    """The command as a user runs it: from the wheel, in a shell that sets no TensorFlow
    log level; it succeeds and prints nothing of TensorFlow's native noise."""
    done = subprocess.run(
        [str(bin_dir / command), *map(str, args)],
        cwd=cwd,
        env=installed_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, f"{command}: {done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr
    for noise in NATIVE_NOISE:
        assert noise not in done.stdout + done.stderr, (command, noise, done.stderr[-3000:])
    return done


@pytest.mark.slow
def test_the_whole_chain_runs_from_an_empty_folder_on_a_dataset_folder(installed_wheel, tmp_path):
    bin_dir, _ = installed_wheel
    cwd = tmp_path / "empty"
    cwd.mkdir()
    located = subprocess.run(
        [str(bin_dir / "python"), "-c", "import gfrnet_tf; print(gfrnet_tf.__file__)"],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        env=installed_env(),
    )
    assert str(bin_dir.parent) in located.stdout  # the wheel, not the checkout

    photos = tmp_path / "photos"
    photo = _photo()
    for identity in IDENTITIES:
        (photos / identity).mkdir(parents=True)
        Image.fromarray(photo).save(photos / identity / "frontal.png")
        Image.fromarray(_rotated(photo, 20)).save(photos / identity / "tilted.png")
    data = tmp_path / "data"
    _run(
        bin_dir,
        cwd,
        "gfrnet-prepare",
        "--input",
        photos,
        "--output",
        data,
        "--image-size",
        "64",
        "--min-face-size",
        "32",
        "--min-sharpness",
        "0",
        "--num-shards",
        "2",
        "--val-fraction",
        "0.25",
        "--test-fraction",
        "0.25",
        "--direct_running_mode=in_memory",
    )
    manifest = json.loads((data / "manifest.json").read_text())
    assert manifest["image_size"] == 64 and set(manifest["splits"]) >= set(IDENTITIES.values())

    workdir = tmp_path / "run"
    _run(
        bin_dir,
        cwd,
        "gfrnet-train",
        "--config",
        "smoke",
        "--data",
        data,
        "--workdir",
        workdir,
        *TINY,
    )
    # Dashes for underscores, as gfrnet-prepare's flags above: either spelling works.
    evaluated = _run(
        bin_dir, cwd, "gfrnet-evaluate", "--model", workdir, "--data", data, "--batch-size", "4"
    )
    results = json.loads((cwd / "eval" / "results.json").read_text())  # the default --output
    assert results["image_size"] == 32 and results["split"] == "test"
    assert "| run |" in evaluated.stdout
    _run(
        bin_dir,
        cwd,
        "gfrnet-export",
        "--model",
        workdir,
        "--output",
        tmp_path / "export",
        "--formats",
        "savedmodel",
    )
    _run(
        bin_dir,
        cwd,
        "gfrnet-restore",
        "--model",
        tmp_path / "export",
        "--input",
        photos / "person7" / "tilted.png",
        "--guide",
        photos / "person7" / "frontal.png",
        "--output",
        tmp_path / "restored",
        "--restore_all",  # the photo is as sharp as its guide: restored only when asked
    )
    restored = np.asarray(Image.open(tmp_path / "restored" / "tilted_restored.png"))
    assert restored.shape == photo.shape
    assert sorted(os.listdir(cwd)) == ["eval"]  # nothing else written where it was run
