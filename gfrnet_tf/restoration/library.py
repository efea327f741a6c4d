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
    LibraryReport(plan, OUT): add(PhotoResult), write() (faces.csv, people.json, sheets)

Every stage's inputs and outputs are plain picklable values (records, crops, rows);
the models live in the `FaceAnalyser` and the restorer, built once per process.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
from tqdm import tqdm

from gfrnet_tf.io.paths import printable
from gfrnet_tf.people import (
    AcceptanceRule,
    Decision,
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
from gfrnet_tf.restoration.report import ContactSheets, write_records, write_sheet

# The model size when neither the user nor the model says (the paper's).
DEFAULT_IMAGE_SIZE = 256
# Measured on degraded faces (docs/PEOPLE.md section 8).
DEFAULT_RULE = AcceptanceRule(max_distance=0.55, min_ratio=1.15)
DEFAULT_QUALITY_MARGIN = 0.1

__all__ = [
    "Analysis",
    "CLIP",
    "ContactSheets",
    "DEFAULT_IMAGE_SIZE",
    "DEFAULT_QUALITY_MARGIN",
    "DEFAULT_RULE",
    "FaceAnalyser",
    "LibraryItem",
    "LibraryPlan",
    "LibraryReport",
    "LibrarySummary",
    "NamedPeople",
    "NoClipStages",
    "PHOTO",
    "PhotoResult",
    "RestoreSettings",
    "analyse_item",
    "decide_item",
    "default_options",
    "find_people",
    "guide_crops",
    "library_people",
    "list_library",
    "named_people",
    "plan_library",
    "restore_library",
    "restore_planned",
    "restore_photo",
    "restore_photos",
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

    def count(self, rows: Iterable[dict]) -> LibrarySummary:
        """Adds up `rows` by action; a row of no face (face -1) is a file without one."""
        for row in rows:
            if row["face"] == "-1":
                self.problems += 1
                continue
            self.faces += 1
            action = row["action"].split(":")[0]
            self.restored += action == "restored"
            self.kept += action == "kept"
            self.skipped += action == "skipped"
        return self

    def describe(self) -> str:
        return (
            f"{self.files} file(s), {self.faces} face(s) of {self.people} people: "
            f"{self.restored} restored, {self.kept} kept, {self.skipped} skipped; "
            f"{self.problems} file(s) without a usable face"
        )


@dataclasses.dataclass(frozen=True)
class NoClipStages:
    """The `clips` of a run that cannot restore clips (`gfrnet_tf.video.clip_stages` without
    PyAV): each clip is a file with `problem`, one row and one `error:` line that say what
    to install."""

    problem: str

    def analyse(self, item: LibraryItem, analyser) -> Analysis:
        del analyser
        return Analysis(item, problem=self.problem)


def analyse_item(item: LibraryItem, analyser: FaceAnalyser, clips=None) -> Analysis:
    """A photo's faces, or with `clips` a clip's face tracks (else a clip is a problem)."""
    return clips.analyse(item, analyser) if clips and item.kind == CLIP else analyser.analyse(item)


def decide_item(analysis: Analysis, people, options: DecisionOptions, clips=None):
    """`decide_faces` for a photo's faces; a clip's tracks are decided by `clips`."""
    decide = clips.decide if clips and analysis.item.kind == CLIP else decide_faces
    return decide(analysis.faces, people, options)


def library_people(
    analyses: Sequence[Analysis], named: Sequence[Person], options: DecisionOptions
) -> dict[str, tuple[Person, ...]]:
    """`{album: the people its faces are decided against}`: the named people, then the
    album's own (`find_people`, one album at a time). With `any_person` and named people,
    only the named ones: their guides are what the user forces on every face."""
    albums: dict[str, list] = {}
    for analysis in analyses:
        albums.setdefault(analysis.item.album, []).extend(analysis.faces)
    if options.any_person and named:
        return dict.fromkeys(albums, tuple(named))
    return {album: (*named, *find_people(faces, named, options)) for album, faces in albums.items()}


@dataclasses.dataclass(frozen=True)
class LibraryPlan:
    """Everything decided before a face is restored: each item's analysis, the people each
    album's faces were decided against, each item's decisions (by `LibraryItem.photo`, for
    items with faces) and the guides' model-size crops. A page keeps it to restore one
    photo again with a person's override of one decision."""

    options: DecisionOptions
    analyses: tuple[Analysis, ...]
    people_of: dict[str, tuple[Person, ...]]
    decisions: dict[str, list[Decision]]
    guides: dict[tuple[str, int], np.ndarray]

    @property
    def people(self) -> list[Person]:
        return list({p.name: p for people in self.people_of.values() for p in people}.values())

    def jobs(self) -> list[tuple[LibraryItem, list[Decision]]]:
        """`(item, decisions)` of every item with faces, in library order."""
        return [(a.item, self.decisions[a.item.photo]) for a in self.analyses if a.faces]


def plan_library(
    items: Sequence[LibraryItem],
    analyser: FaceAnalyser,
    settings: RestoreSettings,
    options: DecisionOptions,
    named: NamedPeople = NamedPeople(),
    clips=None,
    on_item: Callable[[], None] = lambda: None,
) -> LibraryPlan:
    """Analyses every item (`on_item()` after each), finds each album's people and decides
    every face; crops the guides. See `restore_library` for `clips`."""
    analyses = []
    for item in items:
        analyses.append(analyse_item(item, analyser, clips))
        on_item()
    people_of = library_people(analyses, named.people, options)
    decisions = {
        a.item.photo: decide_item(a, people_of[a.item.album], options, clips)
        for a in analyses
        if a.faces
    }
    sources = dict(named.sources)
    sources.update((a.item.photo, a.item.path) for a in analyses)
    people = {p.name: p for album_people in people_of.values() for p in album_people}
    guides = guide_crops(
        (g for person in people.values() for g in person.guides),
        sources,
        settings.image_size,
        settings.margin,
    )
    return LibraryPlan(options, tuple(analyses), people_of, decisions, guides)


def restore_planned(
    jobs, plan: LibraryPlan, restorer, analyser, output, settings: RestoreSettings, clips=None
) -> Iterator[PhotoResult]:
    """Restores `(item, decisions)` jobs (`plan.jobs()`, or some with a person's overrides)
    with the plan's guides: the photos in model batches, then the clips; one result each."""
    jobs = list(jobs)
    photos = [(item, d) for item, d in jobs if item.kind == PHOTO]
    yield from restore_photos(photos, plan.guides, restorer, analyser, output, settings)
    if clips:
        for item, decisions in jobs:
            if item.kind == CLIP:
                yield clips.restore(
                    item, decisions, plan.guides, restorer, analyser, output, settings
                )


class LibraryReport:
    """Collects a run's rows and contact-sheet pictures as results come and writes the
    report into the folder `output_path`: faces.csv, people.json and the sheets (`write`).

    An album's own people (found by grouping, not named) have all their faces in that
    album, so their sheets are written as soon as its last item is added and their
    pictures let go: what the report holds grows with the named people and the rows, not
    with the number of albums.
    """

    def __init__(self, plan: LibraryPlan, output_path):
        self.plan = plan
        self.output_path = output_path
        self.rows = [problem_row(a.item.photo, a.problem) for a in plan.analyses if a.problem]
        self.sheets = ContactSheets(plan.guides)
        self._album_of = {item.photo: item.album for item, _ in plan.jobs()}
        self._left = collections.Counter(self._album_of.values())
        self._written: set[str] = set()

    def add(self, result: PhotoResult) -> None:
        self.rows.extend(result.rows)
        self.sheets.add(result)
        album = self._album_of[result.photo]
        self._left[album] -= 1
        if self._left[album] == 0:
            for person in self.plan.people_of.get(album, ()):
                if not person.named:
                    self.write_sheet(person)

    def write(self) -> LibrarySummary:
        """Writes the rest of the report; the run's counts."""
        people = self.plan.people
        for person in people:
            if person.name not in self._written:
                self.write_sheet(person)
        write_records(self.output_path, self.rows, people)
        return LibrarySummary(files=len(self.plan.analyses), people=len(people)).count(self.rows)

    def write_sheet(self, person: Person) -> None:
        """Writes one person's sheet and lets go of their pictures."""
        write_sheet(self.output_path, person, self.sheets)
        self.sheets.forget(person.name)
        self._written.add(person.name)


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

    `clips`: an object with `analyse(item, analyser) -> Analysis`, `decide(tracks,
    people, options) -> [Decision]` and `restore(item, decisions, guides, restorer,
    analyser, output, settings) -> PhotoResult`
    (`gfrnet_tf.video.clip_stages`: `ClipStages`, or `NoClipStages` without PyAV); without
    it a clip is a `faces.csv` row.
    """
    items = list_library(root)
    with tqdm(total=len(items), desc="finding faces", unit="file", disable=not progress) as bar:
        plan = plan_library(items, analyser, settings, options, named, clips, bar.update)
    report = LibraryReport(plan, output.path)
    for analysis in plan.analyses:
        if analysis.problem == NO_FACE:
            say(f"{analysis.item.photo}: skipped: {analysis.problem}")
        elif analysis.problem:
            warn(analysis.item.path, analysis.problem)
    jobs = plan.jobs()
    with tqdm(total=len(jobs), desc="restoring", unit="file", disable=not progress) as bar:
        for result in restore_planned(jobs, plan, restorer, analyser, output, settings, clips):
            report.add(result)
            say(describe(result) + (f"\n{result.note}" if result.note else ""))
            bar.update()
    return report.write()


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
