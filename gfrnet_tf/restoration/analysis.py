"""The analysis pass: each photo decoded once, its faces found and described, pixels dropped.

A `FaceAnalyser` holds the models of one process (MTCNN, dlib's 68 points, the identity
embedder: each loaded on first use and shared), so a Beam worker builds one in `setup`
and the command one per run. What comes out is `FaceRecord`s: a few hundred bytes a
face, which is what lets a library of any size be grouped into people before anything
is restored. `named_people` reads the people a user names: `--guide FILE` photos and
`--guides DIR/<name>/` folders (docs/PEOPLE.md section 3).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from gfrnet_tf.errors import BadImageError
from gfrnet_tf.faces.detect import DEFAULT_MIN_CONFIDENCE, detect_faces
from gfrnet_tf.faces.identity import DlibIdentity
from gfrnet_tf.faces.landmarks import DlibLandmarks
from gfrnet_tf.io import load_image
from gfrnet_tf.io.paths import printable
from gfrnet_tf.people import FaceRecord, Person, face_quality, in_position_order
from gfrnet_tf.restoration.listing import PHOTO, LibraryItem

NO_FACE = f"no face found (MTCNN, confidence >= {DEFAULT_MIN_CONFIDENCE})"


@dataclasses.dataclass(frozen=True)
class Analysis:
    """A library item's faces (numbered from the left), or why it has none."""

    item: LibraryItem
    faces: tuple[FaceRecord, ...] = ()
    problem: str = ""


class FaceAnalyser:
    """Finds and describes the faces of photos: box, 68 landmarks, embedding, quality.

    `identity`: an embedder with `embed(images, landmarks)` and `distance(a, b)`
    (`faces.identity.DlibIdentity` by default, or a user's `ArcFaceIdentity`).
    """

    def __init__(self, identity=None, landmarks=None, min_confidence=DEFAULT_MIN_CONFIDENCE):
        self.identity = identity if identity is not None else DlibIdentity()
        self.landmarks = landmarks if landmarks is not None else DlibLandmarks()
        self.min_confidence = min_confidence

    def faces(self, image: np.ndarray, photo: str) -> tuple[FaceRecord, ...]:
        """The faces of one decoded photo, as records named `photo`."""
        detections = detect_faces(image, self.min_confidence)
        ordered = [detections[i] for i in in_position_order([d.box for d in detections])]
        return self.faces_at(image, [face.box for face in ordered], photo)

    def faces_at(self, image: np.ndarray, boxes, photo: str) -> tuple[FaceRecord, ...]:
        """Records of the faces in `boxes` (x, y, w, h) of one photo or frame, in that order."""
        if not len(boxes):
            return ()
        boxes = [tuple(int(round(v)) for v in box) for box in boxes]
        landmarks = [self.landmarks.locate(image, box, photo) for box in boxes]
        embeddings = self.identity.embed([image] * len(boxes), landmarks)
        return tuple(
            FaceRecord(photo, k, box, points, embedding, face_quality(image, box, points))
            for k, (box, points, embedding) in enumerate(zip(boxes, landmarks, embeddings))
        )

    def embed(self, image: np.ndarray, faces: Sequence[FaceRecord]) -> np.ndarray:
        """Embeddings of `faces` located in (another version of) their photo, e.g. restored."""
        return self.identity.embed([image] * len(faces), [face.landmarks for face in faces])

    def analyse(self, item: LibraryItem) -> Analysis:
        """Decodes and analyses one photo; clips are analysed by `gfrnet_tf.video.people`."""
        if item.problem:
            return Analysis(item, problem=item.problem)
        if item.kind != PHOTO:
            return Analysis(item, problem=f"a {item.kind}, not a photo")
        try:
            faces = self.faces(load_image(item.path), item.photo)
        except BadImageError as error:
            return Analysis(item, problem=error.problem)
        return Analysis(item, faces, "" if faces else NO_FACE)


@dataclasses.dataclass(frozen=True)
class NamedPeople:
    """The people a user named, their guides' files and what could not be used.

    `sources` maps each guide's `FaceRecord.photo` to its file (to decode it again);
    `problems` are `(file, problem)` pairs, one `error:` line each.
    """

    people: tuple[Person, ...] = ()
    sources: dict = dataclasses.field(default_factory=dict)
    problems: tuple[tuple[str, str], ...] = ()


def named_people(analyser: FaceAnalyser, guide_files=(), guides_dir=None) -> NamedPeople:
    """The people of `--guide FILE`s (guides of one person are joined by identity, named
    after the first one's file) and of `--guides DIR` (a person per folder)."""
    people, sources, problems = [], {}, []
    loose = []
    for path in guide_files:
        face = _guide_face(analyser, Path(path), f"guide:{printable(Path(path).name)}", problems)
        if face is not None:
            sources[face.photo] = str(path)
            loose.append((Path(path).stem, face))
    people.extend(_joined_by_identity(analyser, loose))
    if guides_dir is not None:
        people.extend(_folder_people(analyser, Path(guides_dir), sources, problems))
    return NamedPeople(tuple(_unique_names(people)), sources, tuple(problems))


def _guide_face(analyser, path: Path, photo: str, problems) -> FaceRecord | None:
    try:
        faces = analyser.faces(load_image(path), photo)
    except BadImageError as error:
        problems.append((printable(path), error.problem))
        return None
    if len(faces) != 1:
        problem = NO_FACE if not faces else f"{len(faces)} faces; crop the guide to one person"
        problems.append((printable(path), problem))
        return None
    return faces[0]


def _joined_by_identity(analyser, named_faces) -> list[Person]:
    """Guides closer than the embedder's clean-face threshold to a person's guide are that
    person's; the first guide of a person names them."""
    threshold = getattr(analyser.identity, "threshold", None)
    groups: list[tuple[str, list[FaceRecord]]] = []
    for name, face in named_faces:
        for _, faces in groups:
            if threshold is not None and any(
                analyser.identity.distance(face.embedding, other.embedding) < threshold
                for other in faces
            ):
                faces.append(face)
                break
        else:
            groups.append((name, [face]))
    return [Person(printable(name), tuple(faces), named=True) for name, faces in groups]


def _folder_people(analyser, folder: Path, sources, problems) -> list[Person]:
    people = []
    try:
        entries = sorted(os.scandir(folder), key=lambda e: os.fsencode(e.name))
    except OSError as error:
        problems.append((printable(folder), f"cannot be listed ({error.strerror or error})"))
        return people
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            problems.append(
                (printable(entry.path), "not in a person's folder: --guides DIR/<name>/")
            )
            continue
        name = printable(entry.name)
        files = sorted(
            (p for p in Path(entry.path).iterdir() if p.is_file() and not p.name.startswith(".")),
            key=lambda p: os.fsencode(p.name),
        )
        guides, unusable = [], []
        for path in files:
            face = _guide_face(analyser, path, f"guides:{name}/{printable(path.name)}", unusable)
            if face is not None:
                sources[face.photo] = str(path)
                guides.append(face)
        if guides:
            people.append(Person(name, tuple(guides), named=True))
            problems.extend(unusable)
        elif files:  # one line for the folder, not one per photo
            why = f"none of its {len(files)} photo(s) has one usable face ({unusable[0][1]})"
            problems.append((printable(entry.path), why))
        else:
            problems.append((printable(entry.path), "empty person folder"))
    return people


def _unique_names(people: list[Person]) -> list[Person]:
    """Two people of one name (`--guide a/x.jpg --guide b/x.jpg` of two people) get -2, -3."""
    seen: dict[str, int] = {}
    unique = []
    for person in people:
        seen[person.name] = seen.get(person.name, 0) + 1
        if seen[person.name] > 1:
            person = dataclasses.replace(person, name=f"{person.name}-{seen[person.name]}")
        unique.append(person)
    return unique
