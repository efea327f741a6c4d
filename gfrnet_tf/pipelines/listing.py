"""Listing and reading the input tree of `gfrnet-prepare` without trusting it.

Years of scraping leave names that are not UTF-8, FIFOs, sockets, device nodes, symlink
loops, empty files and files larger than any photo. None of them may stop or hang the
pipeline: each becomes one rejected photo. Local folders are read with `os` on byte names
(a FIFO is never opened for a blocking read; only regular files are read); other file
systems (`gs://`, `hdfs://`) through `tf.io.gfile`, which can only list UTF-8 names.

Names travel through the pipeline as text that Beam's coders and the TFRecord schema can
carry: a byte that is not UTF-8 becomes a `\\xNN` escape (`gfrnet_tf.io.paths.printable`),
so `caf\\xe9/1.jpg` is that photo's key, while the path that is read keeps the real bytes.
"""

from __future__ import annotations

import os
import stat

from gfrnet_tf.errors import BadConfigError, BadImageError
from gfrnet_tf.io.paths import printable

_READ_CHUNK = 1 << 20


def is_local(path: str) -> bool:
    return "://" not in path


def join(folder, name):
    """`folder/name` for byte (local) or text (remote) paths."""
    return folder + (b"/" if isinstance(folder, bytes) else "/") + name


def text_of(name) -> str:
    """The printable text of a byte or text name (escapes for bytes that are not UTF-8)."""
    return printable(os.fsdecode(name) if isinstance(name, bytes) else name)


def root_path(root: str):
    """The path form `list_folder` and `read_photo` take: bytes for a local folder."""
    return os.fsencode(root) if is_local(root) else root


def list_folder(folder) -> tuple[list, list]:
    """`(sub-folders, other entries)` of `folder` (bytes: local, str: remote), each sorted by
    name, hidden names skipped. Raises `OSError` or `UnicodeDecodeError` (remote only)."""
    if isinstance(folder, bytes):
        folders, others = [], []
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith(b"."):
                    continue
                # is_dir follows symlinks and is False for a loop: that is read, and rejected.
                (folders if _is_dir(entry) else others).append(entry.name)
        return sorted(folders), sorted(others)
    import tensorflow as tf

    names = sorted(name.rstrip("/") for name in tf.io.gfile.listdir(folder))
    names = [name for name in names if not name.startswith(".")]
    folders = {name for name in names if tf.io.gfile.isdir(join(folder, name))}
    return sorted(folders), [name for name in names if name not in folders]


def _is_dir(entry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def list_identities(root: str) -> list[tuple[str, object]]:
    """`(identity text, folder path)` for every sub-folder of `root`, sorted by name."""
    import tensorflow as tf

    if not tf.io.gfile.isdir(root):
        raise BadConfigError(root, "--input is not a folder")
    path = root_path(root)
    try:
        folders, _ = list_folder(path)
    except (OSError, UnicodeDecodeError) as error:
        raise BadConfigError(root, f"cannot list it ({reason(error)})") from None
    return [(text_of(name), join(path, name)) for name in folders]


def read_photo(path, key: str, max_bytes: int) -> bytes:
    """The bytes of one photo; `BadImageError(key, ...)` for anything that is not a regular
    file of 1 to `max_bytes` bytes whose size stays what it said while read."""
    if not isinstance(path, bytes):
        return _read_remote(path, key, max_bytes)
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise BadImageError(key, "not a regular file (a FIFO, socket, device or folder)")
        # O_NONBLOCK: if a FIFO replaced the file since the stat, opening it cannot block.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as error:
        raise BadImageError(key, f"cannot open ({reason(error)})") from None
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise BadImageError(key, "not a regular file (a FIFO, socket, device or folder)")
        data = _read_bounded(lambda size: os.read(descriptor, size), key, max_bytes)
    except OSError as error:
        raise BadImageError(key, f"cannot read ({reason(error)})") from None
    finally:
        os.close(descriptor)
    if len(data) != info.st_size:
        raise BadImageError(
            key, f"states {info.st_size} bytes but {len(data)} were read (changed while read?)"
        )
    return data


def _read_remote(path: str, key: str, max_bytes: int) -> bytes:
    import tensorflow as tf

    try:
        size = tf.io.gfile.stat(path).length
        if size > max_bytes:
            raise BadImageError(key, f"{size} bytes, more than {max_bytes} for a photo")
        with tf.io.gfile.GFile(path, "rb") as stream:
            data = _read_bounded(stream.read, key, max_bytes)
    except tf.errors.OpError as error:
        raise BadImageError(key, f"cannot read ({error.message})") from None
    if len(data) != size:
        raise BadImageError(key, f"states {size} bytes but {len(data)} were read")
    return data


def _read_bounded(read, key: str, max_bytes: int) -> bytes:
    """Reads to the end, but never more than `max_bytes` + 1 bytes, whatever a header says."""
    chunks, total = [], 0
    while total <= max_bytes:
        chunk = read(min(_READ_CHUNK, max_bytes + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    if total > max_bytes:
        raise BadImageError(key, f"more than {max_bytes} bytes for a photo")
    if total == 0:
        raise BadImageError(key, "empty file")
    return b"".join(chunks)


def check_output_outside_input(input_root: str, output: str) -> None:
    """Refuses an output folder that is, or is inside, the input tree: the next run would
    read its shards and guides back as an identity of photos."""
    if is_local(input_root) and is_local(output):
        inside = os.path.commonpath(
            [os.path.realpath(input_root), os.path.realpath(output)]
        ) == os.path.realpath(input_root)
    else:
        inside = (output.rstrip("/") + "/").startswith(input_root.rstrip("/") + "/")
    if inside:
        raise BadConfigError(
            output,
            f"--output is inside --input {printable(input_root)}: its "
            "files would be read back as photos; choose a folder "
            "outside the input",
        )


def reason(error: Exception) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return type(error).__name__
