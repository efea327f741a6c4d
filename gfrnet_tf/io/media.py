"""Telling video files from photos, by name or by their first bytes.

A folder given to `gfrnet-restore` may mix photos and videos. A file is a video when its
suffix says so, or when it starts like an ISO media file (`ftyp` box: mp4, mov, 3gp --
but not the HEIF/AVIF still-image brands, which are photos), Matroska/WebM (EBML) or AVI.
A file taken for a video that is none fails later as a bad video, by name.
"""

from __future__ import annotations

from pathlib import Path

VIDEO_SUFFIXES = frozenset(
    {
        ".3gp",
        ".avi",
        ".flv",
        ".m2ts",
        ".m4v",
        ".mkv",
        ".mov",
        ".mp4",
        ".mpeg",
        ".mpg",
        ".mts",
        ".ogv",
        ".ts",
        ".webm",
        ".wmv",
    }
)
_STILL_BRANDS = frozenset(
    {b"avif", b"avis", b"heic", b"heix", b"heim", b"heis", b"hevc", b"mif1", b"msf1"}
)


def is_video_file(path) -> bool:
    path = Path(path)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return True
    try:
        with open(path, "rb") as stream:
            head = stream.read(12)
    except OSError:
        return False  # unreadable: the photo path reports it
    if head[4:8] == b"ftyp":
        return head[8:12] not in _STILL_BRANDS
    return head.startswith(b"\x1a\x45\xdf\xa3") or (head[:4] == b"RIFF" and head[8:12] == b"AVI ")
