"""absl plumbing shared by every `gfrnet-*` command: help, a quiet start, one-line errors,
positional arguments.

A command defines its flags, writes `main(argv)` and ends with `run = make_run(main)`
(`make_run(main, arguments=("IN.pth", "OUT.npz"))` if it takes positional arguments);
`run` is the console-script entry point. A command module imports nothing that imports
TensorFlow at its top (only inside `main` and the functions it calls): `--help` (also
`-h`, `--helpshort`; `--helpfull` adds absl's own flags) then prints the module's docstring
and the command's flags and exits 0 in well under a second, without loading TensorFlow.
Any other run imports TensorFlow first, quietly (`gfrnet_tf.apps.quiet`). Multi-word
flags take either spelling, `--image_size` (the documented one) or `--image-size`.
"""

from __future__ import annotations

import functools
import signal
import sys

from absl import app, flags

from gfrnet_tf import precision
from gfrnet_tf.apps import quiet
from gfrnet_tf.configs.flags import load_default_presets
from gfrnet_tf.errors import BadConfigError, GFRNetError
from gfrnet_tf.evaluation.test_protocols import DEFAULT_TEST_PROTOCOL, TEST_PROTOCOLS
from gfrnet_tf.io.paths import printable
from gfrnet_tf.training.strategies import STRATEGIES

DEBUG = flags.DEFINE_bool("debug", False, "Show full Python tracebacks instead of one-line errors.")
flags.FLAGS["verbosity"].help = (
    "Log level: -1 warnings and errors (the default), 0 also progress notes and "
    "TensorFlow's own log lines, 1 debug."
)
# Help requests answered before absl parses anything (absl's own --help exits 1, and parsing
# --config would load a preset, which imports TensorFlow).
SHORT_HELP = ("-h", "-?", "--help", "-help", "--helpshort", "-helpshort")
FULL_HELP = ("--helpfull", "-helpfull")


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


def make_run(main, arguments: tuple[str, ...] = (), passes_on=None):
    """The console-script entry point for `main`: `absl.app.run` with help that works, a quiet
    TensorFlow and one-line errors.

    `arguments` names the positional arguments the command takes (most take none);
    `check_arguments` holds the command line to them once the flags are parsed, before `main`.
    `passes_on(argv)` True (e.g. `gfrnet-restore --runner`): the flags absl does not know
    reach `main` after `argv[0]` (Beam's pipeline options) instead of being refused.
    """

    def run():
        # Whatever the locale, a name it cannot encode prints escaped, never a crash.
        sys.stdout.reconfigure(errors="backslashreplace")
        exit_cleanly_on_termination()
        adopt_key_flags(main.__module__)
        argv = [sys.argv[0], *spelled_as_defined(sys.argv[1:])]
        startup = []

        def parse(argv):
            answer_help(argv, main.__module__)
            startup.extend(quiet.import_tensorflow(quiet.requested_verbosity(argv)))
            load_default_presets()
            return parse_flags(argv, arguments, known_only=bool(passes_on and passes_on(argv)))

        app.call_after_init(lambda: quiet.log_lines(startup))
        app.run(main_wrapper(main), argv=argv, flags_parser=parse)

    return run


def exit_cleanly_on_termination():
    """SIGTERM and SIGHUP (`kill`, a closed terminal, a job scheduler's stop) raise
    `SystemExit(128 + signal)` in the main thread, as Ctrl-C raises KeyboardInterrupt, so
    every `finally` runs: partial outputs are removed (`gfrnet_tf.io.atomic`), files closed.
    By default Python dies at once and leaves them."""
    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, _exit_on_signal)


def _exit_on_signal(number, frame):
    del frame
    raise SystemExit(128 + number)


def adopt_key_flags(module_name: str) -> None:
    """Makes the command's flags (its module's, these shared ones, `--config`, `--verbosity`)
    absl's key flags of the running program, which `--help` and absl's usage messages list.

    absl lists only the flags of `__main__`, and a console script's `__main__` is a wrapper
    that defines none (docs/DESIGN.md, "Facts found on 2026-12-06").
    """
    values = flags.FLAGS
    chosen = [
        *values.get_key_flags_for_module(module_name),
        *values.get_key_flags_for_module(__name__),
        *values.get_key_flags_for_module("gfrnet_tf.configs.flags"),
        values["verbosity"],
    ]
    for flag in chosen:
        values.register_key_flag_for_module(sys.argv[0], flag)


def answer_help(argv, module_name: str) -> None:
    """For `--help` and its kin anywhere before `--`: the command's docstring and flags on
    stdout, exit status 0."""
    options = argv[1 : argv.index("--")] if "--" in argv else argv[1:]
    full = any(option in FULL_HELP for option in options)
    if not full and not any(option in SHORT_HELP for option in options):
        return
    doc = (sys.modules[module_name].__doc__ or "").strip()
    if full:
        listing = flags.FLAGS.get_help()
    else:  # without absl's first line, the path of the console script
        listing = flags.FLAGS.main_module_help().strip().split("\n", 1)[1]
        listing += "\n\n--helpfull also lists absl's own flags (logging, debugging)."
    print(f"{doc}\n\nflags:\n{listing}")
    sys.exit(0)


def spelled_as_defined(args, is_flag=flags.FLAGS.__contains__) -> list[str]:
    """`--image-size=64` -> `--image_size=64` (and `--noface-measures`): a flag whose name has
    underscores may be typed with dashes. `is_flag(name)` says which names are flags; values
    and anything after `--` stay as typed."""
    spelled = []
    for index, arg in enumerate(args):
        if arg == "--":
            return spelled + list(args[index:])
        dashes = "--" if arg.startswith("--") else "-" if arg.startswith("-") else ""
        name, equals, value = arg[len(dashes) :].partition("=")
        underscored = name.replace("-", "_")
        negated = underscored.startswith("no") and is_flag(underscored[2:])
        if dashes and underscored != name and (is_flag(underscored) or negated):
            arg = f"{dashes}{underscored}{equals}{value}"
        spelled.append(arg)
    return spelled


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


def positional_words(args) -> list[str]:
    """The words of `args` that are no option's value, read as Beam reads options it does not
    know: a word right after `--name` (without `=`) is that option's value."""
    return [
        word
        for before, word in zip(["-", *args], args)
        if not word.startswith("-") and not (before.startswith("--") and "=" not in before)
    ]


def parse_flags(argv, arguments: tuple[str, ...] = (), known_only: bool = False):
    """absl's parser, plus one line for what `--config` raises outside `flags.Error`: any
    exception of the config file's own code, or e.g. AttributeError for a mistyped
    `--config.x.y=` override; then `check_arguments` on what is left (`known_only`: on its
    positional words, the unknown flags being passed on). Logging stays at warnings unless
    `--verbosity` says otherwise."""
    try:
        if known_only:
            remaining = flags.FLAGS(argv, known_only=True)
        else:
            remaining = app.parse_flags_with_usage(argv)
    except Exception as error:
        if "--debug" in argv:
            raise
        problem = " ".join(str(error).split())
        print(f"error: command line: {type(error).__name__}: {problem}", file=sys.stderr)
        sys.exit(1)
    try:
        given = positional_words(remaining[1:]) if known_only else remaining[1:]
        check_arguments(given, arguments)
    except BadConfigError as error:
        exit_with(error)
    if flags.FLAGS["verbosity"].using_default_value:
        flags.FLAGS.verbosity = quiet.QUIET  # absl would raise it to INFO
    return remaining


def define_strategy_flag():
    """`--strategy`, for commands that run the model on many examples."""
    return flags.DEFINE_enum(
        "strategy",
        "auto",
        list(STRATEGIES),
        "tf.distribute strategy: auto = multi-worker if TF_CONFIG lists several workers, "
        "else mirrored over several local GPUs, else none.",
    )


def define_test_protocol_flag():
    """`--test_protocol`, for commands that evaluate (`evaluation.test_protocols`)."""
    return flags.DEFINE_enum(
        "test_protocol",
        DEFAULT_TEST_PROTOCOL,
        list(TEST_PROTOCOLS),
        "What the 4x/8x settings draw: "
        + "; ".join(f"{name}: {meaning}" for name, meaning in TEST_PROTOCOLS.items()),
    )


def strategy_from_flags():
    """The `tf.distribute.Strategy` that `--strategy` asks for."""
    from gfrnet_tf.training.distribute import make_strategy

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
