"""Names from datasets made safe and printable, and output folders checked up front.

Identity and file names of scraped collections are untrusted: `../x`, `/etc/passwd`, a
NUL byte, bytes that are not UTF-8 or a 300-character name must not escape or break the
output folder, nor the terminal that prints them.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import tempfile
import unicodedata

from gfrnet_tf.errors import BadOutputError

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_LENGTH = 80


def safe_name(name: str) -> str:
    """One path component from `name`: `[A-Za-z0-9._-]`, no leading dot, at most ~90 chars.

    A name that had to change gets 8 hex digits of its hash appended, so two different
    names never collapse onto the same file (`a/b` and `a_b` stay apart).
    """
    text = unicodedata.normalize("NFKC", str(name))
    cleaned = _UNSAFE.sub("_", text).lstrip(".")[:_MAX_LENGTH]
    if cleaned == text and cleaned:
        return cleaned
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{cleaned or 'unnamed'}-{digest}"


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(path) -> str:
    """`path` as text that any terminal and locale can print, on one line.

    Scraped file names need not be valid UTF-8 (Python keeps their bytes as surrogates);
    printing one under a strict locale raises `UnicodeEncodeError`. Such bytes become
    `\\xNN` escapes here, and so do control characters (a newline would split a one-line
    message, an escape sequence would drive the terminal); every other character is kept.
    """
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


def make_output_dir(path, create: bool = True):
    """Checks that files can be created in the output folder `path`, creating it if `create`;
    returns `path`. A real file is created and removed: permission bits do not stop root.

    Raises `BadOutputError(path, ...)` for a path that is a file (or below one), read-only
    or on a full disk, before a run spends any time on work it could not save. With
    `create=False` nothing is made: a missing folder is checked through the closest
    folder that exists (where it would be created).
    """
    probe = os.fspath(path)
    if not create:
        while not os.path.lexists(probe) and os.path.dirname(os.path.abspath(probe)) != probe:
            probe = os.path.dirname(os.path.abspath(probe))
    try:
        if create:
            os.makedirs(path, exist_ok=True)
        elif os.path.exists(probe) and not os.path.isdir(probe):  # what makedirs would meet
            raise (
                FileExistsError()
                if probe == os.fspath(path)
                else NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
            )
        with tempfile.TemporaryFile(dir=probe):
            pass
    except FileExistsError:
        raise BadOutputError(printable(path), "is a file, not a folder") from None
    except OSError as error:
        raise BadOutputError(
            printable(path), f"cannot write here: {error.strerror or error}"
        ) from None
    return path
