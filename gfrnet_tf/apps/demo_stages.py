"""What `gfrnet-demo` and `gfrnet-ablate` share: running a `gfrnet-*` command as its own
process with a timed banner, and the flags of a short training run.

The sample data they train on is `gfrnet_tf.sample.write_sample_dataset`.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time


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
