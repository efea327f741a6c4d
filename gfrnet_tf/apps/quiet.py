"""TensorFlow without its start-up noise: what a command prints is what its user needs.

TensorFlow's C++ libraries log through absl before anything initialises absl's log, so
their start-up lines ("All log messages before absl::InitializeLog() ...", "Could not find
cuda drivers ...", once per copy of absl inside TensorFlow: twice per process) ignore
`TF_CPP_MIN_LOG_LEVEL`. `import_tensorflow` imports it with file descriptor 2 pointing at a
temporary file and keeps those lines for the log. `TF_CPP_MIN_LOG_LEVEL=3` (unless the user
set it) then keeps TensorFlow's later native lines (`failed call to cuInit` on a machine
without a GPU, grappler's `remapper failed`) out of the output: they report devices and
graph optimisations, nothing a user acts on, and a real failure still raises in Python.
`--verbosity=0` or more shows all of them.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile

from absl import flags, logging

# absl's default: warnings and errors only (the command's own output is printed, not logged).
QUIET = -1


def requested_verbosity(argv) -> int:
    """`--verbosity` / `-v` of `argv`, read before the command's flags are parsed (TensorFlow
    reads its log level once, when it loads); `QUIET` when absent or malformed."""
    peek = flags.FlagValues()
    flags.DEFINE_integer("verbosity", QUIET, "", short_name="v", flag_values=peek)
    try:
        peek(list(argv), known_only=True)
    except flags.Error:
        return QUIET  # the real parse reports it
    return peek.verbosity


@contextlib.contextmanager
def native_stderr_captured(lines: list[str]):
    """Inside the block, whatever is written to file descriptor 2 (C++ included) is appended
    to `lines` instead; if the block raises, it is written out after all."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        failed = True
        try:
            yield lines
            failed = False
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", errors="replace")
            if failed:
                sys.stderr.write(text)
            lines.extend(text.splitlines())


def import_tensorflow(verbosity: int) -> list[str]:
    """Imports TensorFlow with the native log level of `verbosity`; returns its start-up lines
    (empty when it was already imported). Call it before anything else imports TensorFlow."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3" if verbosity < 0 else "0")
    lines: list[str] = []
    if "tensorflow" in sys.modules:
        return lines
    with native_stderr_captured(lines):
        import tensorflow  # noqa: F401 (loaded here, quietly, for every later import)
    return lines


def log_lines(lines, source: str = "tensorflow start-up") -> None:
    """`lines` into the absl log at INFO (`--verbosity=0` shows them)."""
    for line in lines:
        logging.info("%s: %s", source, line)
