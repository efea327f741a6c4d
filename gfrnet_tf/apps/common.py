"""absl plumbing shared by every `gfrnet-*` command: one-line errors, strategy, configs.

A command defines its flags, writes `main(argv)` and ends with `run = make_run(main)`;
`run` is the console-script entry point.
"""

from __future__ import annotations

import functools
import sys

from absl import app, flags

from gfrnet_tf import precision
from gfrnet_tf.errors import GFRNetError
from gfrnet_tf.io.paths import printable
from gfrnet_tf.training.distribute import STRATEGIES, make_strategy

DEBUG = flags.DEFINE_bool("debug", False, "Show full Python tracebacks instead of one-line errors.")


def main_wrapper(main):
    """Turns a `GFRNetError` from `main` into `error: <file>: <problem>` on stderr and exit 1."""

    @functools.wraps(main)
    def wrapped(argv):
        try:
            return main(argv)
        except GFRNetError as error:
            if flags.FLAGS.is_parsed() and DEBUG.value:
                raise
            print(f"error: {printable(error.source)}: {printable(error.problem)}", file=sys.stderr)
            sys.exit(1)

    return wrapped


def make_run(main):
    """The console-script entry point for `main`: `absl.app.run` with one-line errors."""

    def run():
        # Whatever the locale, a name it cannot encode prints escaped, never a crash.
        sys.stdout.reconfigure(errors="backslashreplace")
        app.run(main_wrapper(main), flags_parser=_parse_flags)

    return run


def _parse_flags(argv):
    """absl's parser, plus one line for what `--config` raises outside `flags.Error`: any
    exception of the config file's own code, or e.g. AttributeError for a mistyped
    `--config.x.y=` override."""
    try:
        return app.parse_flags_with_usage(argv)
    except Exception as error:
        if "--debug" in argv:
            raise
        problem = " ".join(str(error).split())
        print(f"error: command line: {type(error).__name__}: {problem}", file=sys.stderr)
        sys.exit(1)


def define_strategy_flag():
    """`--strategy`, for commands that run the model on many examples."""
    return flags.DEFINE_enum(
        "strategy",
        "auto",
        list(STRATEGIES),
        "tf.distribute strategy: auto = multi-worker if TF_CONFIG lists several workers, "
        "else mirrored over several local GPUs, else none.",
    )


def strategy_from_flags():
    """The `tf.distribute.Strategy` that `--strategy` asks for."""
    return make_strategy(flags.FLAGS.strategy)


def define_precision_flag(default, help_text):
    """`--precision`, one of `gfrnet_tf.precision.PRECISIONS` (what each becomes on which
    device: that module's table)."""
    return flags.DEFINE_enum("precision", default, list(precision.PRECISIONS), help_text)


def inference_policy(requested) -> str:
    """The Keras policy `--precision` becomes on this machine, said when it is not float32."""
    choice = precision.choose(requested, source="--precision")
    if choice.policy != precision.FLOAT32 or choice.note:
        print(choice.describe(), flush=True)
    return choice.policy
