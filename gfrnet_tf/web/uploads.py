"""What a browser may upload, checked before anything is decoded.

An upload arrives as a temporary file (the multipart parser spools it) with a name the
browser chose. The name is only ever shown, never used as a path: the file is stored as
`<kind>-<number><suffix>` in the visitor's own folder, the suffix taken from what the
header says the file is. A photo's size comes from its header (`io.images.image_header`),
a clip's from its container (`video.reader.VideoReader`), a zip's members from its
directory, each against `UploadLimits` before a pixel is decoded or a member extracted; a
member's bytes are counted as they are extracted, since a zip's directory may lie.
"""

from __future__ import annotations

import dataclasses
import os
import unicodedata
import zipfile
from pathlib import Path

from gfrnet_tf.errors import (
    BadImageError,
    GFRNetError,
    MissingDependencyError,
    optional_dependency,
)
from gfrnet_tf.io.images import image_header, load_image
from gfrnet_tf.io.media import is_video_file

PHOTO, CLIP = "photo", "clip"
# Pillow formats a photo may have, and the suffix it is stored under.
PHOTO_SUFFIXES = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tif"}
CLIP_SUFFIX = ".mp4"  # FFmpeg reads the container from the content, whatever the suffix
ZIP_MAGIC = b"PK\x03\x04"
_CHUNK = 1 << 20
_SHOWN_NAME_LENGTH = 80


class UploadRefused(GFRNetError):
    """An upload the page does not take: too many, too large, or not a photo, clip or zip."""

    reason = "refused"


@dataclasses.dataclass(frozen=True)
class UploadLimits:
    """Per visitor: how many files (zip members count one each), bytes per file and in all,
    pixels per photo or clip frame, frames per clip."""

    max_files: int = 50
    max_file_bytes: int = 40 << 20
    max_total_bytes: int = 400 << 20
    max_pixels: int = 40_000_000
    max_clip_frames: int = 1500

    def __post_init__(self):
        for field in dataclasses.fields(self):
            if getattr(self, field.name) < 1:
                raise ValueError(
                    f"{field.name} must be at least 1, got {getattr(self, field.name)}"
                )

    def describe(self) -> str:
        """One line for the page."""
        return (
            f"up to {self.max_files} files, {self.max_file_bytes >> 20} MB each "
            f"({self.max_total_bytes >> 20} MB in all), photos up to "
            f"{self.max_pixels / 1e6:g} megapixels, clips up to {self.max_clip_frames} frames"
        )


@dataclasses.dataclass(frozen=True)
class StoredUpload:
    """An accepted file: what it is, the name shown for it, where it lies, its size."""

    kind: str
    name: str
    path: Path
    size: tuple[int, int]  # width, height (a clip's frames)


def shown_name(name) -> str:
    """The browser's file name as the page shows it: the last part of any path, control
    characters dropped, at most 80 characters; `unnamed` if nothing is left."""
    text = str(name or "").replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(c for c in text if unicodedata.category(c)[0] != "C").strip()
    return text[:_SHOWN_NAME_LENGTH] or "unnamed"


class UploadBudget:
    """A visitor's files and bytes so far, against the limits. Not thread-safe: one
    visitor's uploads are taken one at a time (the visitor's lock)."""

    def __init__(self, limits: UploadLimits):
        self.limits = limits
        self.files = 0
        self.bytes = 0

    def take(self, name: str, size: int) -> None:
        """Counts one more file of `size` bytes, or refuses it (nothing counted)."""
        limits = self.limits
        if self.files + 1 > limits.max_files:
            raise UploadRefused(
                name, f"more than {limits.max_files} files; start over to add others"
            )
        if size > limits.max_file_bytes:
            raise UploadRefused(name, f"larger than {limits.max_file_bytes >> 20} MB")
        if self.bytes + size > limits.max_total_bytes:
            raise UploadRefused(name, f"more than {limits.max_total_bytes >> 20} MB in all")
        self.files += 1
        self.bytes += size

    def give_back(self, size: int) -> None:
        """Uncounts a file that was counted and then refused, or that the visitor removed."""
        self.files -= 1
        self.bytes -= size


def store_upload(
    spooled, name: str, folder: Path, number, budget: UploadBudget, no_clips: str = ""
) -> tuple[list[StoredUpload], list[UploadRefused]]:
    """Stores one uploaded file (a binary stream) in `folder`: a photo, a clip or a zip of
    them; with `no_clips`, a clip is refused with that reason. `number()` gives the next
    free file number. Returns what was accepted and what
    was refused (a zip's bad members are refused one by one; the others are kept)."""
    head = spooled.read(len(ZIP_MAGIC))
    spooled.seek(0)
    if head == ZIP_MAGIC:
        return _store_zip(spooled, name, folder, number, budget, no_clips)
    try:
        return [_store_one(spooled, name, folder, number(), budget, no_clips)], []
    except UploadRefused as refused:
        return [], [refused]


def _store_one(stream, name, folder: Path, number: int, budget: UploadBudget, no_clips: str):
    """Copies at most `max_file_bytes` + 1 bytes, then checks the header; all or nothing."""
    limits = budget.limits
    raw = folder / f"upload-{number:04d}.part"
    with open(raw, "wb") as out:
        size = _copy_counted(stream, out, limits.max_file_bytes + 1)
    try:
        if size == 0:
            raise UploadRefused(name, "empty file")
        budget.take(name, size)
        try:
            kind, suffix, dimensions = _identify(raw, name, limits, no_clips)
        except GFRNetError:
            budget.give_back(size)
            raise
    except GFRNetError as error:
        raw.unlink()
        raise UploadRefused(name, error.problem) from None
    path = raw.with_name(f"{kind}-{number:04d}{suffix}")
    os.replace(raw, path)
    return StoredUpload(kind, name, path, dimensions)


def _identify(path: Path, name: str, limits: UploadLimits, no_clips: str):
    """`(kind, suffix, (width, height))`, or the problem that makes it unusable."""
    try:
        image_format, width, height = image_header(path, name, limits.max_pixels)
    except BadImageError as error:
        if not error.problem.startswith("not an image"):
            raise
    else:
        if image_format not in PHOTO_SUFFIXES:
            raise UploadRefused(name, f"{image_format} images are not taken; use JPEG or PNG")
        load_image(path, limits.max_pixels)  # the body too: a truncated photo is told now
        return PHOTO, PHOTO_SUFFIXES[image_format], (width, height)
    if is_video_file(path):
        if no_clips:
            raise UploadRefused(name, no_clips)
        return CLIP, CLIP_SUFFIX, _clip_size(path, name, limits)
    raise UploadRefused(name, "not a photo (JPEG, PNG, WebP, BMP, TIFF), a clip or a zip of them")


def _clip_size(path: Path, name: str, limits: UploadLimits) -> tuple[int, int]:
    """A clip's frame size from its container header, with its frame count checked."""
    try:
        with optional_dependency(name):
            from gfrnet_tf.video.reader import VideoReader
    except MissingDependencyError as error:
        raise UploadRefused(name, error.problem) from None
    with VideoReader(path, limits.max_pixels) as reader:
        info = reader.info
    frames = info.declared_frames or round(info.declared_seconds * info.rate)
    if frames > limits.max_clip_frames:
        raise UploadRefused(
            name, f"{frames} frames, more than the {limits.max_clip_frames} a clip may have"
        )
    return info.width, info.height


def _store_zip(stream, name, folder, number, budget, no_clips):
    accepted, refused = [], []
    try:
        archive = zipfile.ZipFile(stream)
        members = [m for m in archive.infolist() if _is_content(m)]
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        return [], [UploadRefused(name, f"unreadable zip ({error})")]
    with archive:
        for member in sorted(members, key=lambda m: m.filename):
            member_name = f"{name}: {shown_name(member.filename)}"
            try:
                accepted.append(
                    _store_member(archive, member, member_name, folder, number, budget, no_clips)
                )
            except UploadRefused as error:
                refused.append(error)
    if not accepted and not refused:
        refused.append(UploadRefused(name, "the zip holds no files"))
    return accepted, refused


def _store_member(archive, member, name, folder, number, budget, no_clips):
    if member.flag_bits & 0x1:
        raise UploadRefused(name, "encrypted; not opened")
    if member.file_size > budget.limits.max_file_bytes:  # the directory's claim; counted again
        raise UploadRefused(name, f"larger than {budget.limits.max_file_bytes >> 20} MB")
    try:
        with archive.open(member) as stream:
            if stream.read(len(ZIP_MAGIC)) == ZIP_MAGIC:
                raise UploadRefused(name, "a zip inside a zip is not opened")
        with archive.open(member) as stream:
            return _store_one(stream, name, folder, number(), budget, no_clips)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:  # CRC, bad data
        raise UploadRefused(name, f"cannot be extracted ({error})") from None


def _is_content(member: zipfile.ZipInfo) -> bool:
    """A file a person put in the zip: not a folder, not a hidden or macOS resource file."""
    parts = member.filename.replace("\\", "/").split("/")
    hidden = any(p.startswith(".") and p not in (".", "..") or p == "__MACOSX" for p in parts)
    return not member.is_dir() and not hidden


def _copy_counted(source, target, limit: int) -> int:
    """Copies at most `limit` bytes; how many were copied."""
    copied = 0
    while copied < limit:
        chunk = source.read(min(_CHUNK, limit - copied))
        if not chunk:
            break
        target.write(chunk)
        copied += len(chunk)
    return copied
