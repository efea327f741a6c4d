"""Restoring a photo library by person: the stages every restoring path composes.

docs/PEOPLE.md section 7. The one-machine command (`restore_library`), the Beam pipeline
and the web page call the same stages, so their bytes agree:

    list_library(root) -> [LibraryItem]                       (listing.py)
    FaceAnalyser().analyse(item) -> Analysis                  (analysis.py, one per process)
    named_people(analyser, guide_files, guides_dir) -> NamedPeople
    find_people(album's faces, named people, options) -> (Person, ...)   (grouping.py)
    decide_faces(photo's faces, people, options) -> [Decision]           (gfrnet_tf.people)
    guide_crops(guides, sources, image_size) -> {key: crop}   (batches.py)
    restore_photos([(item, decisions)], guides, ...) -> PhotoResult per item
    write_report(OUT, rows, people, ContactSheets)            (report.py)

Every stage's inputs and outputs are plain picklable values (records, crops, rows);
the models live in the `FaceAnalyser` and the restorer, built once per process.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

from tqdm import tqdm

from gfrnet_tf.io.paths import printable
from gfrnet_tf.people import (
    AcceptanceRule,
    DecisionOptions,
    Person,
    decide_faces,
    problem_row,
)
from gfrnet_tf.restoration.analysis import (
    NO_FACE,
    Analysis,
    FaceAnalyser,
    NamedPeople,
    named_people,
)
from gfrnet_tf.restoration.batches import (
    PhotoResult,
    RestoreSettings,
    guide_crops,
    restore_photo,
    restore_photos,
)
from gfrnet_tf.restoration.grouping import find_people
from gfrnet_tf.restoration.listing import CLIP, PHOTO, LibraryItem, list_library
from gfrnet_tf.restoration.report import ContactSheets, write_report

# Measured on degraded faces (docs/PEOPLE.md section 8).
DEFAULT_RULE = AcceptanceRule(max_distance=0.5, min_ratio=1.25)
DEFAULT_QUALITY_MARGIN = 0.1

__all__ = [
    "Analysis",
    "CLIP",
    "ContactSheets",
    "DEFAULT_QUALITY_MARGIN",
    "DEFAULT_RULE",
    "FaceAnalyser",
    "LibraryItem",
    "LibrarySummary",
    "NamedPeople",
    "PHOTO",
    "PhotoResult",
    "RestoreSettings",
    "default_options",
    "find_people",
    "guide_crops",
    "library_people",
    "list_library",
    "named_people",
    "restore_library",
    "restore_photo",
    "restore_photos",
    "write_report",
]


def default_options(any_person: bool = False, restore_all: bool = False) -> DecisionOptions:
    """The measured rule and margin, with the user's overrides."""
    return DecisionOptions(
        DEFAULT_RULE,
        DEFAULT_QUALITY_MARGIN,
        any_person=any_person,
        restore_good_faces=restore_all,
    )


@dataclasses.dataclass
class LibrarySummary:
    """Counts of one run, for its last line."""

    files: int = 0
    faces: int = 0
    restored: int = 0
    kept: int = 0
    skipped: int = 0
    problems: int = 0
    people: int = 0

    def describe(self) -> str:
        return (
            f"{self.files} file(s), {self.faces} face(s) of {self.people} people: "
            f"{self.restored} restored, {self.kept} kept, {self.skipped} skipped; "
            f"{self.problems} file(s) without a usable face"
        )


def library_people(
    analyses: Sequence[Analysis], named: Sequence[Person], options: DecisionOptions
) -> dict[str, tuple[Person, ...]]:
    """`{album: the people its faces are decided against}`: the named people, then the
    album's own (`find_people`, one album at a time)."""
    albums: dict[str, list] = {}
    for analysis in analyses:
        albums.setdefault(analysis.item.album, []).extend(analysis.faces)
    return {album: (*named, *find_people(faces, named, options)) for album, faces in albums.items()}


def restore_library(
    root,
    output,
    restorer,
    analyser: FaceAnalyser,
    settings: RestoreSettings,
    options: DecisionOptions,
    named: NamedPeople = NamedPeople(),
    clips=None,
    progress: bool = True,
    say: Callable[[str], None] = print,
    warn: Callable[[str, str], None] = lambda path, problem: None,
) -> LibrarySummary:
    """Restores every photo (and with `clips`, every clip) under `root` into the
    `OutputFolder` `output` and writes its report; one line per file through `say`, and
    `warn(path, problem)` for each file that could not be read (a photo without a face is
    no problem: its row says so).

    `clips`: an object with `analyse(item, analyser) -> Analysis` and `restore(item,
    decisions, guides, restorer, analyser, output, settings) -> PhotoResult`
    (`gfrnet_tf.video.people.ClipStages`); without it a clip is a `faces.csv` row.
    """
    items = list_library(root)
    analyses = [
        clips.analyse(item, analyser) if clips and item.kind == CLIP else analyser.analyse(item)
        for item in tqdm(items, desc="finding faces", unit="file", disable=not progress)
    ]
    people_of = library_people(analyses, named.people, options)
    decided = [
        (a, decide_faces(a.faces, people_of[a.item.album], options)) for a in analyses if a.faces
    ]
    people = {p.name: p for album_people in people_of.values() for p in album_people}
    sources = dict(named.sources)
    sources.update((a.item.photo, a.item.path) for a in analyses)
    guides = guide_crops(
        (g for person in people.values() for g in person.guides),
        sources,
        settings.image_size,
        settings.margin,
    )
    rows = []
    for analysis in analyses:
        if analysis.problem:
            rows.append(problem_row(analysis.item.photo, analysis.problem))
            if analysis.problem == NO_FACE:
                say(f"{analysis.item.photo}: {rows[-1]['action']}")
            else:
                warn(analysis.item.path, analysis.problem)
    sheets = ContactSheets(guides)
    summary = LibrarySummary(files=len(items), problems=len(rows), people=len(people))
    photos = [(a.item, d) for a, d in decided if a.item.kind == PHOTO]
    results = restore_photos(photos, guides, restorer, analyser, output, settings)
    if clips:
        results = _chain(results, clips, decided, guides, restorer, analyser, output, settings)
    with tqdm(total=len(decided), desc="restoring", unit="file", disable=not progress) as bar:
        for result in results:
            rows.extend(result.rows)
            sheets.add(result)
            say(describe(result))
            bar.update()
    for row in rows:
        if row["face"] != "-1":
            summary.faces += 1
            action = row["action"].split(":")[0]
            summary.restored += action == "restored"
            summary.kept += action == "kept"
            summary.skipped += action == "skipped"
    write_report(output.path, rows, list(people.values()), sheets)
    return summary


def _chain(results, clips, decided, guides, restorer, analyser, output, settings):
    yield from results
    for analysis, decisions in decided:
        if analysis.item.kind == CLIP:
            yield clips.restore(
                analysis.item, decisions, guides, restorer, analyser, output, settings
            )


def describe(result: PhotoResult) -> str:
    """One line per file: each face by its box (x,y,w,h), what was done, whose guide."""
    return f"{printable(result.photo)}: " + "; ".join(
        _describe_row(row) for row in sorted(result.rows, key=lambda r: int(r["face"]))
    )


def _describe_row(row: dict) -> str:
    who = row["person"]
    if row["guide_photo"]:
        who += f", guide {row['guide_photo']} face {row['guide_face']}"
    where = f"face {row['face']} at {row['box'].replace(' ', ',')}"
    return f"{where}: {row['action']}" + (f" ({who})" if who else "")
