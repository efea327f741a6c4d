"""The steps `gfrnet-demo` and `benchmarks/quality.py` share: sample shards, a sample pair,
and running a `gfrnet-*` command as its own process with a timed banner.

With one bundled photo there is only one face. Every record is a different synthetic
pose and lighting of it (a `synthetic_pose` warp of the photo, stored as the target, with
the photo itself as its guide), so a model cannot just memorise one fixed output image.
The splits use disjoint seeds: "held-out" means warps and degradations never seen in
training -- of the same face, not of a new person.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from gfrnet_tf.data import default_input_config, encode_pair, write_shard
from gfrnet_tf.data.pipeline import array_dataset
from gfrnet_tf.data.records import resize_with_landmarks
from gfrnet_tf.data.images import to_uint8
from gfrnet_tf.data.synthetic_pose import default_pose_settings, synthesize_guide
from gfrnet_tf.sample import IMAGE_PATH, load_sample


@dataclasses.dataclass(frozen=True)
class Split:
    """`records` posed copies of the sample in `shards` files; `seed` keeps splits disjoint."""

    name: str
    records: int
    shards: int
    seed: int

    def pattern(self, data_dir) -> str:
        return str(Path(data_dir) / f"{self.name}-*.tfrecord")


SPLITS = (Split("train", 64, 2, 1), Split("val", 8, 1, 2), Split("heldout", 32, 1, 3))


# One trace for all records: op by op, a 256 px warp took ~0.9 s per record (measured).
@tf.function(autograph=False)
def posed_sample(image, landmarks, seed):
    """The sample photo in another pose and light (uint8) and its landmarks there.

    `synthesize_guide` maps the photo to a warped copy whose landmarks follow the warp
    exactly, which is what a target record needs.
    """
    posed, posed_landmarks, _ = synthesize_guide(
        tf.image.convert_image_dtype(image, tf.float32), landmarks, seed, default_pose_settings())
    return tf.image.convert_image_dtype(posed, tf.uint8, saturate=True), posed_landmarks


def sample_at(image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The bundled photo (uint8) and its landmarks resized to `image_size` pixels."""
    image, landmarks = load_sample()
    image = tf.image.convert_image_dtype(image, tf.float32)
    image, landmarks = resize_with_landmarks(image, landmarks, image_size)
    return tf.image.convert_image_dtype(image, tf.uint8, saturate=True).numpy(), landmarks.numpy()


def write_sample_shards(data_dir, image_size: int, splits=SPLITS) -> dict[str, str]:
    """Writes every split as TFRecord shards (atomic, deterministic); returns name -> glob.

    Records are stored at the training size: the pipeline then skips its resize, and a
    64 px warp costs a sixteenth of a 256 px one. Re-running overwrites them with the
    same bytes.
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    image, landmarks = sample_at(image_size)
    guide = tf.io.encode_png(image).numpy()  # one encoding shared by every record
    for split in splits:
        examples = []
        for index in range(split.records):
            target, target_landmarks = posed_sample(image, landmarks, tf.constant([split.seed, index]))
            examples.append(encode_pair(
                target.numpy(), guide, target_landmarks.numpy(), landmarks, identity="astronaut",
                target_file=f"{IMAGE_PATH.name}#{split.name}-{index}", guide_file=IMAGE_PATH.name))
        for shard, part in enumerate(np.array_split(np.arange(split.records), split.shards)):
            path = data_dir / f"{split.name}-{shard:05d}-of-{split.shards:05d}.tfrecord"
            write_shard(path, [examples[i] for i in part])
    return {split.name: split.pattern(data_dir) for split in splits}


def degraded_pair(image_size: int, scale: float = 4.0, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """(degraded, guide) uint8 `[S, S, 3]` of the sample photo through the training pipeline:
    Eq. 4 at `scale` and a synthetic-pose guide, so restoring it is the task the model learnt."""
    config = default_input_config()
    config.image_size = image_size
    config.batch_size = 1
    config.seed = seed
    config.synthetic_pose.enabled = True
    config.degradation.mode = "fixed"
    config.degradation.fixed.scale = scale
    image, landmarks = sample_at(image_size)
    inputs, _ = next(iter(array_dataset(image[np.newaxis], landmarks[np.newaxis], config, training=False)))
    return to_uint8(inputs["degraded"][0]).numpy(), to_uint8(inputs["guide"][0]).numpy()


class Stages:
    """Numbered, timed stage banners; `command` runs `python -m gfrnet_tf.apps.<name>`.

    Each command runs in its own process because every `gfrnet-*` app defines its absl
    flags at import and several share names (`--config`, `--model`, `--data`), so two
    apps cannot live in one interpreter. A process per stage is exactly the command a
    user would type, at the price of one TensorFlow start-up (a few seconds) each.
    """

    def __init__(self, total: int):
        self.total = total
        self.done = 0
        self.start = time.monotonic()
        self.timings: dict[str, float] = {}

    def begin(self, title: str) -> float:
        self.done += 1
        elapsed = time.monotonic() - self.start
        print(f"\n== [{self.done}/{self.total}] {title} (at {elapsed:.0f} s)", flush=True)
        return time.monotonic()

    def end(self, title: str, started: float) -> None:
        self.timings[title] = time.monotonic() - started
        print(f"-- {title}: {self.timings[title]:.0f} s", flush=True)

    def command(self, title: str, app: str, args: list[str]) -> None:
        """Runs `gfrnet-<app>` with `args`; exits with its status if it fails."""
        started = self.begin(title)
        argv = [sys.executable, "-m", f"gfrnet_tf.apps.{app}", *args]
        print("$ " + shlex.join([f"gfrnet-{app}", *args]), flush=True)
        # TensorFlow's C++ INFO/WARNING start-up lines (oneDNN, CUDA probing) would bury the
        # stage output; errors still show, and a TF_CPP_MIN_LOG_LEVEL the user set wins.
        env = {"TF_CPP_MIN_LOG_LEVEL": "2", **os.environ}
        status = subprocess.run(argv, check=False, env=env).returncode
        if status:
            print(f"error: gfrnet-{app}: failed with exit status {status} (stage: {title})",
                  file=sys.stderr)
            sys.exit(status)
        self.end(title, started)


# Measured with benchmarks/quality.py (64 px, 1500 joint steps, held-out landmark error of
# the warped guide / of the guide): the config's LR step-down (patience 1 on an 8-record
# validation split) fell from 2e-4 to 2e-6 within 1000 steps and left 0.068 / 0.110;
# a constant 2e-4 with 500 pre-training steps reached 0.053 / 0.110. 1e-3 was worse (0.088).
SHORT_RUN_OVERRIDES = ("--config.train.learning_rates=(2e-4,)", "--config.train.warp_pretrain_epochs=2")


def short_run_overrides(steps: int, epoch_steps: int = 250) -> list[str]:
    """`--config.train.*` flags for a run of about `steps` joint-training steps (rounded up
    to whole data epochs of `epoch_steps`, each ending with validation), after
    `warp_pretrain_epochs` such epochs of WarpNet pre-training, at a constant learning rate.

    A checkpoint every half epoch: the smoke config's 10-step interval would spend most of
    a longer run saving (each interval is one `fit` epoch with its callbacks).
    """
    epoch_steps = max(1, min(epoch_steps, steps))
    checkpoint_every = epoch_steps // 2 if epoch_steps % 2 == 0 else epoch_steps
    return [*SHORT_RUN_OVERRIDES,
            f"--config.train.steps_per_epoch={epoch_steps}",
            f"--config.train.checkpoint_every={checkpoint_every}",
            f"--config.train.epochs={-(-steps // epoch_steps)}"]
