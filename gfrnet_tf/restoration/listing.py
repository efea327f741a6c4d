"""Listing a photo library: every photo and clip under a folder, recursively, in one order.

The order (and so every later stage's) is the sorted relative paths, whatever the file
system returns. Symlinked folders are followed, except back into a folder being walked
(a loop becomes one row instead of a hang); hidden files and folders are left out. A
folder that cannot be listed, or a link to nothing, is an item with a `problem`, so
`faces.csv` accounts for it. Each item also gets its output stem: its path in OUT
without the suffix, made unique within its folder and short enough for the file system
(`outputs.output_stems`).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from gfrnet_tf.errors import BadConfigError
from gfrnet_tf.io.media import is_video_file
from gfrnet_tf.io.paths import printable
from gfrnet_tf.restoration.outputs import output_stems, stem_budget

PHOTO, CLIP = "photo", "clip"
# The longest text an output name adds to a photo's stem (up to 1000 faces per photo).
LONGEST_SUFFIX = "_face999_compare.png"


@dataclasses.dataclass(frozen=True)
class LibraryItem:
    """One file of the library. `photo`: its path relative to the root, `/`-separated and
    printable (`FaceRecord.photo`); `path`: where to open it; `kind`: `PHOTO` or `CLIP`;
    `output`: its output stem relative to OUT (`/`-separated, the real name's characters);
    `problem`: why it cannot be used (then nothing else is done with it)."""

    photo: str
    path: str
    kind: str
    output: str = ""
    problem: str = ""

    @property
    def album(self) -> str:
        """The top-level folder the file is in ('' directly in the root)."""
        head, slash, _ = self.photo.partition("/")
        return head if slash else ""


def list_library(root) -> list[LibraryItem]:
    """Every visible file under `root` (or `root` itself when it is a file), sorted."""
    root = Path(root)
    if root.is_file():
        return [_item(root, (root.name,), {root.name: root.stem})]
    if not root.is_dir():
        raise BadConfigError(printable(root), "--input is neither a file nor a folder")
    items = []
    pending = [(root, (), frozenset({_folder_identity(root)}))]
    while pending:
        folder, parts, ancestors = pending.pop()
        try:
            with os.scandir(folder) as scan:
                entries = [entry for entry in scan if not entry.name.startswith(".")]
        except OSError as error:
            problem = f"folder cannot be listed ({error.strerror or error})"
            items.append(
                LibraryItem(printable("/".join(parts) or "."), str(folder), "", "", problem)
            )
            continue
        files, budget = [], stem_budget(LONGEST_SUFFIX)
        for entry in entries:
            relative = (*parts, entry.name)
            try:
                is_folder = entry.is_dir()
                is_file = not is_folder and entry.is_file()
            except OSError:
                is_folder = is_file = False
            if is_folder:
                identity = _folder_identity(entry.path)
                if identity in ancestors:
                    problem = "symlink loop: folder not followed"
                    items.append(
                        LibraryItem(printable("/".join(relative)), entry.path, "", "", problem)
                    )
                else:
                    pending.append((Path(entry.path), relative, ancestors | {identity}))
            elif is_file:
                files.append(Path(entry.path))
            else:
                problem = "not a file (a broken link or a device)"
                items.append(
                    LibraryItem(printable("/".join(relative)), entry.path, "", "", problem)
                )
        stems = output_stems(files, budget)
        items.extend(_item(path, (*parts, path.name), {path.name: stems[path]}) for path in files)
    return sorted(items, key=lambda item: item.photo)


def _item(path: Path, relative: tuple[str, ...], stems: dict[str, str]) -> LibraryItem:
    output = "/".join((*relative[:-1], stems[path.name]))
    kind = CLIP if is_video_file(path) else PHOTO
    return LibraryItem(printable("/".join(relative)), str(path), kind, output)


def _folder_identity(path) -> tuple[int, int]:
    status = os.stat(path)
    return status.st_dev, status.st_ino
