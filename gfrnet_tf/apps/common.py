"""absl plumbing shared by every `gfrnet-*` command: one-line errors, arguments, strategy.

A command defines its flags, writes `main(argv)` and ends with `run = make_run(main)`;
`run` is the console-script entry point.
"""

from __future__ import annotations

import functools
import sys

from absl import app, flags

from gfrnet_tf.errors import BadConfigError, GFRNetError
from gfrnet_tf.io.paths import printable

DEBUG = flags.DEFINE_bool("debug", False, "Show full Python tracebacks instead of one-line errors.")


def exit_with(error: GFRNetError):
    """Prints `error: <file>: <problem>` on stderr and exits with status 1."""
    print(f"error: {printable(error.source)}: {printable(error.problem)}", file=sys.stderr)
    sys.exit(1)


def main_wrapper(main):
    """Turns a `GFRNetError` from `main` into `error: <file>: <problem>` on stderr and exit 1."""

    @functools.wraps(main)
    def wrapped(argv):
        try:
            return main(argv)
        except GFRNetError as error:
            if flags.FLAGS.is_parsed() and DEBUG.value:
                raise
            exit_with(error)

    return wrapped


def make_run(main, arguments: tuple[str, ...] = ()):
    """The console-script entry point for `main`: `absl.app.run` with one-line errors.

    `arguments` names the positional arguments the command takes (most take none);
    `check_arguments` holds the command line to them as the flags are parsed, before `main`.
    """

    def run():
        # Whatever the locale, a name it cannot encode prints escaped, never a crash.
        sys.stdout.reconfigure(errors="backslashreplace")
        _show_flags_in_help(main.__module__)
        app.run(main_wrapper(main), flags_parser=functools.partial(_parse_flags, arguments))

    return run


def _show_flags_in_help(module_name: str) -> None:
    """`--help` lists the key flags of the main module, `sys.argv[0]`: for a console
    script that is the wrapper, which defines none (docs/DESIGN.md, 2026-12-06). The
    command module's flags (and `--debug`) are made the wrapper's key flags."""
    by_module = flags.FLAGS.flags_by_module_dict()
    for name in (module_name, __name__):
        for flag in by_module.get(name, ()):
            flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)


def check_arguments(given, arguments: tuple[str, ...] = ()) -> None:
    """The one rule of every command for positional arguments: exactly `arguments` (their
    names, for the message), else `BadConfigError("command line", ...)`; an extra word is
    never dropped or guessed at."""
    extra, missing = list(given[len(arguments) :]), arguments[len(given) :]
    if extra:
        plural = "s" if len(extra) > 1 else ""
        quoted = ", ".join(f"'{word}'" for word in extra)
        raise BadConfigError("command line", f"unexpected argument{plural} {quoted}")
    if missing:
        plural = "s" if len(missing) > 1 else ""
        raise BadConfigError("command line", f"missing argument{plural} {' '.join(missing)}")


def _parse_flags(arguments, argv):
    """absl's parser, plus one line for what `--config` raises outside `flags.Error`: any
    exception of the config file's own code, or e.g. AttributeError for a mistyped
    `--config.x.y=` override; then `check_arguments` on what is left."""
    try:
        argv = app.parse_flags_with_usage(argv)
    except Exception as error:
        if "--debug" in argv:
            raise
        problem = " ".join(str(error).split())
        print(f"error: command line: {type(error).__name__}: {problem}", file=sys.stderr)
        sys.exit(1)
    try:
        check_arguments(argv[1:], arguments)
    except BadConfigError as error:
        exit_with(error)
    return argv


def define_strategy_flag():
    """`--strategy`, for commands that run the model on many examples."""
    from gfrnet_tf.training.distribute import STRATEGIES

    return flags.DEFINE_enum(
        "strategy",
        "auto",
        list(STRATEGIES),
        "tf.distribute strategy: auto = multi-worker if TF_CONFIG lists several workers, "
        "else mirrored over several local GPUs, else none.",
    )


def strategy_from_flags():
    """The `tf.distribute.Strategy` that `--strategy` asks for."""
    from gfrnet_tf.training.distribute import make_strategy

    return make_strategy(flags.FLAGS.strategy)
