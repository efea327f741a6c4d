"""Write-then-rename, so a killed run never leaves a half file that looks complete.

A partial file is named `.NAME.XXXXXXXX.partial<suffix>` beside `NAME` and locked
(`flock`) by its writer until the rename. Whatever kills the writer (SIGKILL, a power cut)
leaves it unlocked: the next `atomic_path` into the same folder removes such orphans, and
never a partial whose writer still runs. The commands turn SIGTERM and SIGHUP into a
normal exit (`gfrnet_tf.apps.common`), so those remove their own partial at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import tempfile
from pathlib import Path

# mkstemp creates 0600 files; outputs get the usual umask-derived mode instead. The umask
# can only be read by setting it, so it is read once, at import.
_UMASK = os.umask(0o022)
os.umask(_UMASK)
PARTIAL = ".partial"
# What a partial's name adds to its output's: "." + name + "." + 8 random characters +
# PARTIAL + suffix (mkstemp's random part is 8 characters of [a-z0-9_]).
PARTIAL_EXTRA = len("." + "." + "12345678" + PARTIAL)
_PARTIAL_NAME = re.compile(r"\..+\.[a-z0-9_]{8}" + re.escape(PARTIAL) + r"[^/]*")
_SWEPT: set[str] = set()  # folders already cleared of orphans by this process


@contextlib.contextmanager
def atomic_path(path, suffix=".tmp"):
    """Yields a temporary path beside `path`; on success it is renamed to `path` in one step.

    For writers that need a file name (Keras exporters, TFRecord writers, video muxers).
    The temporary file sits in the target folder (dot-prefixed) so the rename stays on one
    file system and glob patterns for outputs never match it; on failure it is removed.
    `suffix` ends its name (some writers choose the format by it).
    """
    path = Path(path)
    remove_orphaned_partials(path.parent)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=PARTIAL + suffix)
    try:
        _lock(fd)
        yield temp
        os.chmod(temp, 0o666 & ~_UMASK)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)


def _lock(fd) -> None:
    """Holds `fd`'s lock until it is closed: the file is not an orphan. Where the file
    system has no locks, nothing is held; a sweep then cannot lock it either and leaves it."""
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_EX)


@contextlib.contextmanager
def atomic_writer(path):
    """Yields a binary stream; on success the data appears at `path` in one rename."""
    with atomic_path(path) as temp, open(temp, "wb") as stream:
        yield stream


def remove_orphaned_partials(folder, force: bool = False) -> list[str]:
    """Removes the partial files of `folder` whose writer is gone (unlocked); their names.

    Done once per folder and process (a folder of many outputs is listed once), unless
    `force`. A folder that cannot be listed is left to the write itself to report.
    """
    key = os.path.abspath(folder)
    if key in _SWEPT and not force:
        return []
    _SWEPT.add(key)
    removed = []
    try:
        entries = [e for e in os.scandir(key) if _PARTIAL_NAME.fullmatch(e.name)]
    except OSError:
        return removed
    for entry in entries:
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue  # gone already, or not a file
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.unlink(entry.path)
            removed.append(entry.name)
        except OSError:
            pass  # locked (its writer is alive), or the file system cannot tell
        finally:
            os.close(fd)
    return removed
