"""Names from datasets made safe and printable, and output folders checked up front.

Identity and file names of scraped collections are untrusted: `../x`, `/etc/passwd`, a
NUL byte, bytes that are not UTF-8 or a 300-character name must not escape or break the
output folder, nor the terminal that prints them.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from pathlib import Path

from gfrnet_tf.errors import BadConfigError

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


def printable(path) -> str:
    """`path` as text that any terminal and locale can print.

    Scraped file names need not be valid UTF-8 (Python keeps their bytes as surrogates);
    printing one under a strict locale raises `UnicodeEncodeError`. Such bytes become
    `\\xNN` escapes here, and every other character is kept.
    """
    text = str(path)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def make_output_dir(path) -> Path:
    """Creates the output folder `path` (and parents); one `BadConfigError` naming it when it
    is a file, cannot be created or cannot be written to, before any work is done."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise BadConfigError(printable(path), "is a file, not an output folder") from None
    except OSError as error:
        raise BadConfigError(printable(path), f"cannot create the output folder: {error.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise BadConfigError(printable(path), "the output folder is not writable")
    return path
