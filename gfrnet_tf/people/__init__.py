"""People in photos: which person each face shows, and which guide photo restores it.

The one decision shared by every way of restoring a library (`gfrnet-restore` on one
machine, the Beam pipeline for archives, the web page): a face is matched to a person by
identity first (`matching`), then to that person's guide closest in pose (`pose`), and is
restored only when it is clearly worse than that guide (`decision`); what was decided is
one `faces.csv` row (`faces_csv`). docs/PEOPLE.md has the contract.
"""

from gfrnet_tf.people.decision import Decision, DecisionOptions, Person, decide_faces
from gfrnet_tf.people.faces_csv import (
    FACES_CSV,
    FACES_CSV_COLUMNS,
    faces_csv_bytes,
    faces_csv_row,
    problem_row,
    write_faces_csv,
)
from gfrnet_tf.people.matching import AcceptanceRule, Match, match_person
from gfrnet_tf.people.pose import choose_guide, pose_distance
from gfrnet_tf.people.quality import face_quality
from gfrnet_tf.people.records import FaceQuality, FaceRecord, in_position_order

__all__ = [
    "AcceptanceRule",
    "Decision",
    "DecisionOptions",
    "FACES_CSV",
    "FACES_CSV_COLUMNS",
    "FaceQuality",
    "FaceRecord",
    "Match",
    "Person",
    "choose_guide",
    "decide_faces",
    "faces_csv_bytes",
    "faces_csv_row",
    "face_quality",
    "in_position_order",
    "match_person",
    "pose_distance",
    "problem_row",
    "write_faces_csv",
]
