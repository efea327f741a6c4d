"""Write-then-rename, so a killed run never leaves a half file that looks complete."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

# mkstemp creates 0600 files; outputs get the usual umask-derived mode instead. The umask
# can only be read by setting it, so it is read once, at import.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path, suffix=".tmp"):
    """Yields a temporary path beside `path`; on success it is renamed to `path` in one step.

    For writers that need a file name (Keras exporters, TFRecord writers). The temporary
    file sits in the target folder (dot-prefixed) so the rename stays on one file system
    and glob patterns for outputs never match it; on failure it is removed.
    """
    path = Path(path)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield temp
        os.chmod(temp, 0o666 & ~_UMASK)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_writer(path):
    """Yields a binary stream; on success the data appears at `path` in one rename."""
    with atomic_path(path) as temp, open(temp, "wb") as stream:
        yield stream
