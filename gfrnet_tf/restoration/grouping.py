"""Finding the people of one album: its faces grouped by identity, each group's best as guides.

Faces that already match a named person (`--guide`, `--guides`) are that person's and
are not grouped again. The rest are linked wherever two faces are at most
`AcceptanceRule.max_distance` apart and grouped with dlib's Chinese whispers (the
face-clustering method of dlib's own examples; deterministic for one input order,
which is the sorted faces'). A group is named `<album>/person-NN` in the order of its
first face; its guides are its best face by `FaceQuality.score` and up to
`GUIDES_PER_PERSON - 1` more within `quality_margin` of it (more poses to choose from)
and within `max_distance` of it (a chain of links through blurred faces can join two
people in one group; their guides still show one person), so every face clearly worse
than the best is left to be restored. A group whose best face scores below
`MIN_GUIDE_QUALITY` guides nobody: the identity rule was measured against clean guides,
and two blurred faces of different people can be nearer than that (docs/PEOPLE.md,
section 8); its faces are then matched to the other people's guides or skipped.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from gfrnet_tf.errors import optional_dependency
from gfrnet_tf.people import DecisionOptions, FaceRecord, Person, match_person
from gfrnet_tf.people.matching import euclidean

GUIDES_PER_PERSON = 3
# Below every face of an undegraded photo measured (0.821 of 1516), above the degraded
# face that guided another person's face in a 2000-photo library (0.642).
MIN_GUIDE_QUALITY = 0.8


def find_people(
    faces: Sequence[FaceRecord],
    named: Sequence[Person],
    options: DecisionOptions,
    guides_per_person: int = GUIDES_PER_PERSON,
    min_guide_quality: float = MIN_GUIDE_QUALITY,
) -> tuple[Person, ...]:
    """The unnamed people among one album's `faces` (named people are not repeated)."""
    guides = [[g.embedding for g in person.guides] for person in named]
    unknown = sorted(
        (
            face
            for face in faces
            if match_person(face.embedding, guides, options.rule, (), options.distance).index
            is None
        ),
        key=lambda face: face.key,
    )
    if not unknown:
        return ()
    with optional_dependency():  # the `landmarks` extra, as the embedder itself
        import dlib

    edges = [(i, i) for i in range(len(unknown))]
    for i, face in enumerate(unknown):
        near = _distances(face, unknown[i + 1 :], options) <= options.rule.max_distance
        edges.extend((i, i + 1 + int(j)) for j in np.flatnonzero(near))
    labels = dlib.chinese_whispers(edges)
    groups: dict[int, list[FaceRecord]] = {}
    for label, face in zip(labels, unknown):
        groups.setdefault(label, []).append(face)
    album = unknown[0].album
    people = []
    for number, members in enumerate(groups.values(), start=1):  # in order of first face
        name = f"{album}/person-{number:02d}" if album else f"person-{number:02d}"
        best = sorted(members, key=lambda face: (-face.quality.score, face.key))
        top = best[0]
        if top.quality.score < min_guide_quality:
            continue
        guides = [
            face
            for face in best
            if face.quality.score > top.quality.score - options.quality_margin
            and options.distance(face.embedding, top.embedding) <= options.rule.max_distance
        ]
        people.append(Person(name, tuple(guides[:guides_per_person])))
    return tuple(people)


def _distances(face: FaceRecord, others: Sequence[FaceRecord], options) -> np.ndarray:
    if not others:
        return np.zeros(0)
    if options.distance is euclidean:  # one matrix operation for the usual embedder
        matrix = np.asarray([other.embedding for other in others], np.float64)
        return np.linalg.norm(matrix - np.asarray(face.embedding, np.float64), axis=1)
    return np.array([options.distance(face.embedding, other.embedding) for other in others])
