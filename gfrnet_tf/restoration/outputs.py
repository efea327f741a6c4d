"""Where restored photos are written: a folder apart from the photos, names that always fit.

The output folder may not be the input folder or lie inside it: its results would sit
among the user's own files, could replace one named like an output (`a_face0.png`), and
a re-run would restore them as photos. Input and guide files are never replaced, wherever
they are. Output names are the photo's stem plus a suffix; a stem too long for the file
system once a suffix (and the atomic writer's temporary name) is added is cut and given
8 hex digits of the photo's full name, so names stay readable, distinct and the same on
every run.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import os
from pathlib import Path

from gfrnet_tf.errors import BadConfigError
from gfrnet_tf.io import save_image
from gfrnet_tf.io.paths import make_output_dir, printable

# Bytes per path component on the usual Linux and macOS file systems; `os.pathconf` tells
# the output folder's own limit where it is smaller (e.g. 143 on eCryptfs).
NAME_MAX = 255
# `atomic_path` writes "." + name + "." + 8 random characters + ".tmp" first.
_TEMPORARY_EXTRA = len("." + "." + "12345678" + ".tmp")
_DIGEST_DIGITS = 8


class OutputFolderError(BadConfigError):
    """The output folder cannot be used or written: every further photo would fail too."""

    reason = "output"


class OutputFolder:
    """The checked `--output` folder of a restoration run, created by the constructor.

    `input_path` is the photo or folder of photos; `protected` are the files that must never
    be replaced (inputs and guides); `longest_suffix` is the longest text any output name
    adds to a photo's stem. A folder that is or lies inside the input folder (through
    symlinks too) is an `OutputFolderError` before anything is created; one that is a
    file or cannot be created or written is `make_output_dir`'s `BadOutputError`.
    """

    def __init__(self, path, input_path, protected=(), longest_suffix: str = ""):
        self.path = Path(path)
        input_path = Path(input_path)
        if input_path.is_dir() and _within(self.path, input_path):
            raise OutputFolderError(
                printable(self.path),
                f"is inside the input folder {printable(input_path)}; choose a folder outside it",
            )
        make_output_dir(self.path)
        self._protected = {_identity(p) for p in protected if os.path.lexists(p)}
        self._stem_bytes = stem_budget(longest_suffix, min(NAME_MAX, _name_max(self.path)))

    def stems(self, photos: list[Path]) -> dict[Path, str]:
        """The output stem of each photo of one folder (`output_stems`), fitted to this
        folder's name limit."""
        return output_stems(photos, self._stem_bytes)

    def target(self, name: str) -> Path:
        """`name` in the folder; `BadConfigError` naming it if it is an input or guide file."""
        target = self.path / name
        if os.path.lexists(target) and _identity(target) in self._protected:
            raise BadConfigError(printable(target), "is an input or guide photo; not replaced")
        return target

    def write(self, stem: str, images: list[tuple[str, object]]) -> None:
        """Saves each `(suffix, uint8 RGB image)` as `stem + suffix`, in order; all or none.
        `stem` may name a subfolder (`a/b`: a library's photo `a/b.jpg`), made as needed.

        A target that is an input or guide file is refused (`BadConfigError` naming it)
        before anything is written. If a write fails, the files already written for this
        call are removed and `OutputFolderError` names the file that failed.
        """
        targets = [(self.target(stem + suffix), image) for suffix, image in images]
        written = []
        try:
            targets[0][0].parent.mkdir(parents=True, exist_ok=True)  # a library's subfolder
            for target, image in targets:
                save_image(target, image)
                written.append(target)
        except OSError as error:
            for done in written:
                with contextlib.suppress(OSError):
                    done.unlink()
            raise OutputFolderError(
                printable(target), f"cannot be written ({error.strerror or error})"
            )


def stem_budget(longest_suffix: str, name_max: int = NAME_MAX) -> int:
    """Bytes left for a photo's stem in an output name of at most `name_max` bytes."""
    return name_max - _TEMPORARY_EXTRA - len(os.fsencode(longest_suffix))


def output_stems(photos: list[Path], budget: int) -> dict[Path, str]:
    """The output stem of each photo of one folder: its own stem, `stem_ext` where two
    photos share a stem, cut and tagged with a digest of the photo's name where longer
    than `budget` bytes or where two would still be equal."""
    counts = collections.Counter(p.stem for p in photos)
    wanted = {
        p: p.stem if counts[p.stem] == 1 else f"{p.stem}_{p.suffix.lstrip('.')}" for p in photos
    }
    stems = {p: _fitted(stem, p.name, budget) for p, stem in wanted.items()}
    taken = collections.Counter(stems.values())
    return {
        p: _fitted(wanted[p], p.name, budget, tagged=True) if taken[stem] > 1 else stem
        for p, stem in stems.items()
    }


def _within(path: Path, folder: Path) -> bool:
    """Whether `path` is `folder` or lies inside it: symlinks and `..` resolved, and each
    existing ancestor compared by inode too (bind mounts, case-insensitive names)."""
    resolved = path.resolve()
    folder = folder.resolve()
    return any(
        candidate == folder or (candidate.exists() and os.path.samefile(candidate, folder))
        for candidate in (resolved, *resolved.parents)
    )


def _identity(path) -> tuple[int, int]:
    """The directory entry itself (not a symlink's target): replacing it is what loses data."""
    status = os.lstat(path)
    return status.st_dev, status.st_ino


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        return NAME_MAX


def _fitted(stem: str, key: str, budget: int, tagged: bool = False) -> str:
    """`stem` if it fits in `budget` bytes; else (or if `tagged`) cut to fit with `-digest`
    of `key` appended. Cut by characters, so a multi-byte character is never split."""
    if not tagged and len(os.fsencode(stem)) <= budget:
        return stem
    tag = "-" + hashlib.sha256(os.fsencode(key)).hexdigest()[:_DIGEST_DIGITS]
    while len(os.fsencode(stem + tag)) > budget:
        stem = stem[:-1]
    return stem + tag
