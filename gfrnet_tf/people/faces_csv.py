"""`faces.csv`: one row per face of a restoring run, the record a person checks.

Every restoring path writes the same columns, sorted by photo and face, with numbers at
fixed precision, so two runs on the same input (one machine or a Beam cluster) give the
same bytes. Columns:

| column | meaning |
| --- | --- |
| photo | path relative to the library root, `/`-separated (`FaceRecord.photo`) |
| face | the face's index in the photo, counted from the left (`in_position_order`) |
| box | `x y width height` pixels of the upright photo |
| frames | a clip track's `first-last` frame; empty for photos |
| person | who the face was matched to; empty when nobody |
| quality | `FaceQuality.score`, higher is better |
| action | `restored`, `kept: <reason>` or `skipped: <reason>` |
| guide_photo, guide_face | the guide that restored it (`FaceRecord.key`) |
| distance_before | identity distance face -> guide (or -> nearest person when none) |
| distance_after | identity distance restored face -> guide; empty unless restored and measured |
| pose_distance | the guide's pose distance to the face |
"""

from __future__ import annotations

import csv
import io
from typing import Iterable

from gfrnet_tf.io.atomic import atomic_writer
from gfrnet_tf.people.decision import KEEP, RESTORE, Decision

FACES_CSV = "faces.csv"
FACES_CSV_COLUMNS = (
    "photo",
    "face",
    "box",
    "frames",
    "person",
    "quality",
    "action",
    "guide_photo",
    "guide_face",
    "distance_before",
    "distance_after",
    "pose_distance",
)
DIGITS = 4


def _number(value) -> str:
    return "" if value is None else f"{value:.{DIGITS}f}"


def faces_csv_row(
    decision: Decision, *, distance_after: float | None = None, failure: str | None = None
) -> dict[str, str]:
    """The row of one face. `failure`: why a face decided for restoring was not (the
    model or the output failed): it becomes `skipped: <failure>`."""
    face = decision.face
    if failure is not None:
        action = f"skipped: {failure}"
    elif decision.action == RESTORE:
        action = "restored"
    else:
        action = f"{'kept' if decision.action == KEEP else 'skipped'}: {decision.reason}"
    guide = decision.guide if decision.action == RESTORE and failure is None else None
    return {
        "photo": face.photo,
        "face": str(face.index),
        "box": " ".join(str(int(v)) for v in face.box),
        "frames": "" if face.frames is None else f"{face.frames[0]}-{face.frames[1]}",
        "person": decision.person or "",
        "quality": _number(face.quality.score),
        "action": action,
        "guide_photo": guide.photo if guide else "",
        "guide_face": str(guide.index) if guide else "",
        "distance_before": _number(decision.distance),
        "distance_after": _number(distance_after if guide else None),
        "pose_distance": _number(decision.pose_distance if guide else None),
    }


def problem_row(photo: str, problem: str) -> dict[str, str]:
    """The row of a file that gave no face (unreadable, no face found, a symlink loop):
    face -1, so `faces.csv` accounts for every file of the library."""
    row = dict.fromkeys(FACES_CSV_COLUMNS, "")
    row.update(photo=photo, face="-1", action=f"skipped: {problem}")
    return row


def faces_csv_bytes(rows: Iterable[dict[str, str]]) -> bytes:
    """The file's bytes: header, then rows sorted by photo and face index."""
    ordered = sorted(rows, key=lambda row: (row["photo"], int(row["face"])))
    text = io.StringIO()
    writer = csv.DictWriter(text, FACES_CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(ordered)
    return text.getvalue().encode("utf-8")


def write_faces_csv(rows: Iterable[dict[str, str]], path) -> None:
    """Writes `faces.csv` atomically (a killed run leaves the previous file or none)."""
    with atomic_writer(str(path)) as stream:
        stream.write(faces_csv_bytes(rows))
