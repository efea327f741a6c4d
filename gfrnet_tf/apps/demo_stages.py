"""What `gfrnet-demo` and `gfrnet-ablate` share: running a `gfrnet-*` command as its own
process with a timed banner, and the flags of a short training run.

The sample data they train on is `gfrnet_tf.sample.write_sample_dataset`.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import time

from gfrnet_tf.configs.budget import (
    DEMO_WARMUP_SHARE,
    EPOCH_STEPS,
    LEARNING_RATE,
    PRETRAIN_EPOCHS,
    short_run_schedule,
)


class Stages:
    """Numbered, timed stage banners; `command` runs `python -m gfrnet_tf.apps.<name>`.

    Each command runs in its own process because every `gfrnet-*` app defines its absl
    flags at import and several share names (`--config`, `--model`, `--data`), so two
    apps cannot live in one interpreter. A process per stage is exactly the command a
    user would type, at the price of one TensorFlow start-up (a few seconds) each.
    """

    def __init__(self, total: int, common_args=()):
        self.total = total
        self.common_args = list(common_args)  # appended to every command, e.g. --verbosity
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
        args = [*args, *self.common_args]
        argv = [sys.executable, "-m", f"gfrnet_tf.apps.{app}", *args]
        print("$ " + shlex.join([f"gfrnet-{app}", *args]), flush=True)
        status = subprocess.run(argv, check=False).returncode
        if status:
            print(
                f"error: gfrnet-{app}: failed with exit status {status} (stage: {title})",
                file=sys.stderr,
            )
            sys.exit(status)
        self.end(title, started)


# The schedule's fixed part (`configs.budget`), as flags.
SHORT_RUN_OVERRIDES = (
    f"--config.train.learning_rates=({LEARNING_RATE!r},)",
    f"--config.train.warp_pretrain_epochs={PRETRAIN_EPOCHS}",
)


def short_run_overrides(steps: int, epoch_steps: int = EPOCH_STEPS) -> list[str]:
    """`--config.train.*` flags of `configs.budget.short_run_schedule(steps, epoch_steps,
    DEMO_WARMUP_SHARE)`."""
    schedule = short_run_schedule(steps, epoch_steps, DEMO_WARMUP_SHARE)
    keys = ("steps_per_epoch", "checkpoint_every", "epochs", "reconstruction_warmup_epochs")
    return [
        *SHORT_RUN_OVERRIDES,
        *(f"--config.train.{key}={schedule[key]}" for key in keys if key in schedule),
    ]
