"""Names from datasets made safe to use as one path component.

Identity and file names of scraped collections are untrusted: `../x`, `/etc/passwd`, a
NUL byte or a 300-character name must not escape or break the output folder.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

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
