"""The face -> person -> guide decision: one function, shared by every restoring path.

For the faces of ONE photo (or one frame's tracks of a clip), `decide_faces` says of each
face: restore it (with which person's which guide), keep it as it is, or skip it, and why:

1. identity first: the face is matched to a person (`matching.match_person`); nobody's
   face is skipped (`no guide of this person`), never restored with a stranger's guide;
2. one face per person per photo: when two faces of a photo match the same person, only
   the nearer one is that person; the other is skipped;
3. quality: a face that is one of its person's guides, or is not clearly worse than the
   person's best guide (`quality_margin` on `FaceQuality.score`), is kept;
4. pose: the person's guide closest in pose (`pose.choose_guide`) restores the face.

`DecisionOptions.any_person` (the `--any_person` flag) skips steps 1-2 for a user who
knows better: every face takes the guide closest in pose among all guides.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

from gfrnet_tf.people.matching import NO_PERSON, AcceptanceRule, euclidean, match_person
from gfrnet_tf.people.pose import choose_guide, pose_distance
from gfrnet_tf.people.records import FaceRecord

RESTORE, KEEP, SKIP = "restore", "keep", "skip"


@dataclasses.dataclass(frozen=True)
class Person:
    """A person and their guides, best first. `named`: given by the user (`--guides DIR`,
    `--guide`), not found by grouping the library's faces."""

    name: str
    guides: tuple[FaceRecord, ...]
    named: bool = False


@dataclasses.dataclass(frozen=True)
class DecisionOptions:
    """`rule`: when a face is a person's (`matching`); `distance`: the embedder's distance;
    `quality_margin`: how much lower a face's score must be than its person's best guide's
    to be restored; `any_person` / `restore_good_faces`: the user's overrides."""

    rule: AcceptanceRule
    quality_margin: float
    distance: Callable = euclidean
    any_person: bool = False
    restore_good_faces: bool = False


@dataclasses.dataclass(frozen=True)
class Decision:
    """What happens to one face. `action` is `RESTORE`, `KEEP` or `SKIP`; `reason` says why
    a face is kept or skipped; `distance` is the identity distance from the face to the
    guide it takes (or to its nearest person when it takes none); `pose_distance` the
    chosen guide's pose distance."""

    face: FaceRecord
    action: str
    reason: str = ""
    person: str | None = None
    guide: FaceRecord | None = None
    distance: float | None = None
    pose_distance: float | None = None


def decide_faces(
    faces: Sequence[FaceRecord], people: Sequence[Person], options: DecisionOptions
) -> list[Decision]:
    """One `Decision` per face of one photo, in the order of `faces`."""
    if options.any_person:
        owner = {guide.key: person.name for person in people for guide in person.guides}
        pooled = Person("any person", tuple(g for p in people for g in p.guides))
        decisions = [_with_guide(face, pooled, None, options) for face in faces]
        return [
            dataclasses.replace(d, person=owner[d.guide.key]) if d.guide else d for d in decisions
        ]
    names = [person.name for person in people]
    matches = [
        match_person(
            face.embedding,
            [[g.embedding for g in p.guides] for p in people],
            options.rule,
            names,
            options.distance,
        )
        for face in faces
    ]
    decisions = []
    for face, match in zip(faces, matches):
        if match.index is None:
            distance = None if match.distance == float("inf") else match.distance
            decisions.append(Decision(face, SKIP, match.reason or NO_PERSON, distance=distance))
            continue
        rival = min(
            (other for other in matches if other.index == match.index),
            key=lambda other: other.distance,
        )
        person = people[match.index]
        if rival is not match:
            decisions.append(
                Decision(
                    face,
                    SKIP,
                    f"another face of this photo is {person.name}",
                    distance=match.distance,
                )
            )
            continue
        decisions.append(_with_guide(face, person, match.distance, options))
    return decisions


def _with_guide(face: FaceRecord, person: Person, distance, options: DecisionOptions) -> Decision:
    guides = [g for g in person.guides if g.key != face.key]
    if len(guides) < len(person.guides):
        return Decision(face, KEEP, f"a guide of {person.name}", person.name, distance=distance)
    if not guides:
        return Decision(face, SKIP, NO_PERSON, distance=distance)
    best = max(g.quality.score for g in guides)
    if not options.restore_good_faces and face.quality.score > best - options.quality_margin:
        return Decision(
            face, KEEP, f"as good as the guides of {person.name}", person.name, distance=distance
        )
    index, _ = choose_guide(face.landmarks, [g.landmarks for g in guides])
    return with_chosen_guide(face, person, guides[index], options)


def with_chosen_guide(
    face: FaceRecord, person: Person, guide: FaceRecord, options: DecisionOptions
) -> Decision:
    """A person's own choice for one face (the page's "use this guide"): restore `face`
    as `person` with `guide`, the identity and pose distances measured as for a decision
    of `decide_faces`. Who the face is, is then the user's word, as with `any_person`.
    `decide_faces` ends here too, with the guide it chose by pose."""
    return Decision(
        face,
        RESTORE,
        "",
        person.name,
        guide,
        options.distance(face.embedding, guide.embedding),
        pose_distance(face.landmarks, guide.landmarks),
    )
