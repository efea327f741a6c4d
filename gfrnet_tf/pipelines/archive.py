"""`gfrnet-restore --runner NAME`: a photo library restored by person on Apache Beam.

The stages of `gfrnet_tf.restoration.library` (docs/PEOPLE.md section 7), composed as
Beam steps, so the run writes the bytes `gfrnet-restore` writes on one machine:

    list_library (driver) -> Reshuffle -> Analyse: analyse_item, a FaceAnalyser per process
      -> by album (GroupByKey) -> People: library_people (find_people, the named people as
         a side input), decide_item per photo, guide_crops -> chunks of photos -> Reshuffle
      -> Crop: prepare_photo_job -> fixed batches of (face, guide) crops keyed by face
      -> RunInference (pipelines.inference.RestorerHandler, no BatchElements)
      -> by photo (GroupByKey) -> Finish: finish_photo (paste, measure, write the files)
      (a clip: ClipStages.restore on one worker, the model called directly)
      -> per person: ContactSheets combined, the sheet written (write_sheet)
      -> one last step: faces.csv and people.json (write_records)

Runner-portable as `prepare` is (docs/PREPARE.md, "Runners"): only Create, ParDo,
GroupByKey, CombinePerKey, Flatten and Reshuffle, RunInference without its batching step
(the Dask runner drops `finish_bundle` output, where `BatchElements` emits a bundle's last
batch); steps emit `(kind, value)` items instead of tagged outputs; the one side input is
the named people (a small singleton, which the Dask runner supports); everything flows
into the last step. Every choice sorts on content: an album's faces by photo, a person's
sheet by face key, `faces.csv` by photo and face; a face's restored bytes do not depend
on its model batch (`pipelines.inference`).
"""

from __future__ import annotations

import dataclasses
import functools

import apache_beam as beam
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

from gfrnet_tf.people import DecisionOptions, problem_row
from gfrnet_tf.people.decision import RESTORE
from gfrnet_tf.pipelines.inference import RestorerHandler, process_restorer
from gfrnet_tf.pipelines.runner import (
    Progress,
    keep,
    new_pipeline,
    run_to_completion,
    select,
    under_one_key,
)
from gfrnet_tf.precision import FLOAT32
from gfrnet_tf.restoration.batches import (
    PhotoResult,
    RestoreSettings,
    finish_photo,
    guide_crops,
    prepare_photo_job,
)
from gfrnet_tf.restoration.library import (
    FaceAnalyser,
    NamedPeople,
    analyse_item,
    decide_item,
    library_people,
)
from gfrnet_tf.restoration.listing import CLIP, LibraryItem
from gfrnet_tf.restoration.outputs import OutputFolder
from gfrnet_tf.restoration.report import ContactSheets, write_records, write_sheet

_PROGRESS = Progress("gfrnet-restore")


@dataclasses.dataclass(frozen=True)
class ArchiveSettings:
    """Everything the workers need; pickled into each step.

    `output`: the `OutputFolder` the driver checked (workers must see it under the same
    path); `model`: the model's path (each worker process loads it once); `photos_per_chunk`
    only groups photos into elements after the people step (how finely work spreads over
    workers), which cannot change any output; `clips`: as `restore_library`'s.
    """

    output: OutputFolder
    model: str
    restore: RestoreSettings
    options: DecisionOptions
    photos_per_chunk: int = 16
    clips: object = None  # `video.people.ClipStages`, or None: clips are rows
    policy: str = FLOAT32  # what a checkpoint or .keras model computes in


@functools.cache
def process_analyser() -> FaceAnalyser:
    """One `FaceAnalyser` per worker process (portable runners may build a step's DoFn
    again for every bundle)."""
    return FaceAnalyser()


class Analyse:
    """A library item -> `(album, Analysis)`: its faces without pixels, or its problem."""

    def __init__(self, settings: ArchiveSettings):
        self.settings = settings

    def __call__(self, item: LibraryItem):
        _PROGRESS.tick()
        return item.album, analyse_item(item, process_analyser(), self.settings.clips)


class People(beam.DoFn):
    """An album's analyses -> its people and, per photo, what to do with each face.

    Emits `("row", row)` for files without a face, `("person", (name, (Person, guide crops
    or None)))` for every person an album decides against (the named people's crops come
    from `NamedGuides`), `("chunk", [(item, decisions, guide crops)])` of photos and
    `("clip", (item, decisions, guide crops))` per clip.
    """

    def __init__(self, settings: ArchiveSettings):
        super().__init__()
        self.settings = settings

    def process(self, album_analyses, named: NamedPeople):
        _, analyses = album_analyses
        analyses = sorted(analyses, key=lambda analysis: analysis.item.photo)
        options, restore = self.settings.options, self.settings.restore
        for analysis in analyses:
            if analysis.problem:
                yield ("row", problem_row(analysis.item.photo, analysis.problem))
        ((_, people),) = library_people(analyses, named.people, options).items()
        decided = [
            (analysis.item, decide_item(analysis, people, options, self.settings.clips))
            for analysis in analyses
            if analysis.faces
        ]
        own = [person for person in people if not person.named]
        used = {
            d.guide.key: d.guide
            for _, decisions in decided
            for d in decisions
            if d.action == RESTORE
        }
        guides = [g for person in own for g in person.guides] + list(used.values())
        sources = dict(named.sources)
        sources.update((analysis.item.photo, analysis.item.path) for analysis in analyses)
        crops = guide_crops(guides, sources, restore.image_size, restore.margin)
        for person in people:
            mine = {g.key: crops[g.key] for g in person.guides if g.key in crops}
            yield ("person", (person.name, (person, None if person.named else mine)))
        photos = []
        for item, decisions in decided:
            job = (item, decisions, _used_crops(decisions, crops))
            if item.kind == CLIP:
                yield ("clip", job)
            else:
                photos.append(job)
        size = self.settings.photos_per_chunk
        for start in range(0, len(photos), size):
            yield ("chunk", photos[start : start + size])


def _used_crops(decisions, crops) -> dict:
    return {
        d.guide.key: crops[d.guide.key]
        for d in decisions
        if d.action == RESTORE and d.guide.key in crops
    }


class NamedGuides(beam.DoFn):
    """A named person -> `(name, ("gallery", (Person, guide crops)))` for their sheet."""

    def __init__(self, settings: ArchiveSettings):
        super().__init__()
        self.settings = settings

    def process(self, person, named: NamedPeople):
        restore = self.settings.restore
        crops = guide_crops(person.guides, named.sources, restore.image_size, restore.margin)
        yield person.name, ("gallery", (person, crops))


class Crop:
    """A chunk of photos -> `("batch", [((photo, face), (crop, guide crop))])` batches of at
    most `batch_size` faces, `("job", (photo, (item, decisions)))` per photo sent to the
    model, and `("done", PhotoResult)` for photos with nothing to restore."""

    def __init__(self, settings: ArchiveSettings):
        self.settings = settings

    def __call__(self, chunk):
        restore = self.settings.restore
        faces = []
        for item, decisions, guides in chunk:
            job = prepare_photo_job(item, list(decisions), guides, restore)
            if not job.jobs:
                yield ("done", self._finish(job, guides))
                continue
            yield ("job", (item.photo, (item, decisions)))
            for decision, crop, _ in job.jobs:
                faces.append((decision.face.key, (crop, guides[decision.guide.key])))
        for start in range(0, len(faces), restore.batch_size):
            yield ("batch", faces[start : start + restore.batch_size])

    def _finish(self, job, guides) -> PhotoResult:
        settings = self.settings
        return finish_photo(job, guides, process_analyser(), settings.output, settings.restore)


class RestoreClip:
    """A clip and its tracks' decisions -> `PhotoResult`: the clip restored whole on one
    worker (its frames stream through the model, not through RunInference)."""

    def __init__(self, settings: ArchiveSettings):
        self.settings = settings

    def __call__(self, job):
        item, decisions, guides = job
        settings = self.settings
        restorer = process_restorer(settings.model, settings.policy)
        analyser = process_analyser()
        return settings.clips.restore(
            item, decisions, guides, restorer, analyser, settings.output, settings.restore
        )


def by_photo(keyed_result):
    """`((photo, face), PredictionResult)` -> `(photo, ("face", (face, PredictionResult)))`."""
    (photo, face), result = keyed_result
    return photo, ("face", (face, result))


def job_by_photo(job):
    photo, value = job
    return photo, ("job", value)


class Finish:
    """A photo's decisions and its faces' model results -> `PhotoResult` (files written)."""

    def __init__(self, settings: ArchiveSettings):
        self.settings = settings

    def __call__(self, photo_parts):
        _, parts = photo_parts
        ((item, decisions),) = [value for kind, value in parts if kind == "job"]
        results = dict(value for kind, value in parts if kind == "face")
        decided = {d.face.key: d for d in decisions}
        # The guide crops travel with the faces they restored.
        guides = {
            decided[(item.photo, face)].guide.key: result.example[1]
            for face, result in results.items()
        }
        restore = self.settings.restore
        job = prepare_photo_job(item, list(decisions), guides, restore)  # decoded again
        for decision, _, _ in job.jobs:
            restoration = results[decision.face.index].inference
            job.results.append((restoration.restored, restoration.warped_guide, restoration.flow))
        return finish_photo(job, guides, process_analyser(), self.settings.output, restore)


def outcomes(result: PhotoResult):
    """A photo's result -> its rows, and its restored faces' pictures keyed by person."""
    for row in result.rows:
        yield ("row", row)
    people = sorted({picture.person for picture in result.pictures})
    for person in people:
        pictures = tuple(p for p in result.pictures if p.person == person)
        yield ("pictures", (person, PhotoResult(result.photo, (), pictures)))


class CombineSheets(beam.CombineFn):
    """One person's pictures (as `PhotoResult`s) -> a `ContactSheets`, bounded in size."""

    def create_accumulator(self):
        return ContactSheets({})

    def add_input(self, sheets, result):
        sheets.add(result)
        return sheets

    def merge_accumulators(self, accumulators):
        accumulators = iter(accumulators)
        merged = next(accumulators)
        for other in accumulators:
            merged.merge(other)
        return merged

    def extract_output(self, sheets):
        return sheets


def tagged(kind):
    """`(key, value)` -> `(key, (kind, value))`, to group values of several kinds by key."""

    def tag(item):
        key, value = item
        return key, (kind, value)

    return tag


class WriteSheet:
    """A person's parts -> their contact sheet; `("person", Person)` for the report.

    Only people some album decided against get a sheet (the one-machine command's people);
    their guides' crops come from their album, or for a named person from the gallery."""

    def __init__(self, settings: ArchiveSettings):
        self.settings = settings

    def __call__(self, person_parts):
        _, parts = person_parts
        seen = [value for kind, value in parts if kind == "person"]
        if not seen:
            return
        person = seen[0][0]
        crops = next(
            value[1] for kind, value in parts if kind != "pictures" and value[1] is not None
        )
        sheets = ContactSheets(crops)
        for kind, value in parts:
            if kind == "pictures":
                sheets.merge(value)
        write_sheet(self.settings.output.path, person, sheets)
        yield ("person", person)


class WriteRecords:
    """The last step: `faces.csv` and `people.json` from every row and person."""

    def __init__(self, settings: ArchiveSettings):
        self.settings = settings

    def __call__(self, item):
        _, entries = item
        rows = [value for kind, value in entries if kind == "row"]
        people = [value for kind, value in entries if kind == "person"]
        write_records(self.settings.output.path, rows, people)
        return len(rows)


def build(pipeline, settings: ArchiveSettings, items, named: NamedPeople) -> None:
    """Adds the restoring steps to `pipeline` (`items` as `list_library` lists them)."""
    gallery = pipeline | "NamedPeople" >> beam.Create([named])
    named_side = beam.pvalue.AsSingleton(gallery)
    albums = (
        pipeline
        | "List" >> beam.Create(items)
        | "SpreadItems" >> beam.Reshuffle()
        | "Analyse" >> beam.Map(Analyse(settings))
        | "ByAlbum" >> beam.GroupByKey()
        | "People" >> beam.ParDo(People(settings), named_side)
    )
    cropped = (
        albums
        | "Chunks" >> beam.FlatMap(select, "chunk")
        | "SpreadChunks" >> beam.Reshuffle()
        | "Crop" >> beam.FlatMap(Crop(settings))
    )
    handler = KeyedModelHandler(
        RestorerHandler(settings.model, settings.restore.batch_size, settings.policy)
    ).with_no_batching()
    restored = (
        cropped
        | "Batches" >> beam.FlatMap(select, "batch")
        | "RunInference" >> RunInference(handler)
        | "FaceByPhoto" >> beam.Map(by_photo)
    )
    jobs = cropped | "Jobs" >> beam.FlatMap(select, "job") | "JobByPhoto" >> beam.Map(job_by_photo)
    finished = (
        (jobs, restored)
        | "PhotoParts" >> beam.Flatten()
        | "ByPhoto" >> beam.GroupByKey()
        | "Finish" >> beam.Map(Finish(settings))
    )
    clips = (
        albums
        | "Clips" >> beam.FlatMap(select, "clip")
        | "SpreadClips" >> beam.Reshuffle()
        | "RestoreClips" >> beam.Map(RestoreClip(settings))
    )
    results = (
        (cropped | "NothingToRestore" >> beam.FlatMap(select, "done"), finished, clips)
        | "Results" >> beam.Flatten()
        | "Outcomes" >> beam.FlatMap(outcomes)
    )
    pictures = (
        results
        | "Pictures" >> beam.FlatMap(select, "pictures")
        | "SheetPerPerson" >> beam.CombinePerKey(CombineSheets())
        | "TagPictures" >> beam.Map(tagged("pictures"))
    )
    album_people = (
        albums
        | "AlbumPeople" >> beam.FlatMap(select, "person")
        | "TagPeople" >> beam.Map(tagged("person"))
    )
    named_guides = (
        pipeline
        | "Named" >> beam.Create(named.people)
        | "NamedGuides" >> beam.ParDo(NamedGuides(settings), named_side)
    )
    people = (
        (pictures, album_people, named_guides)
        | "PersonParts" >> beam.Flatten()
        | "ByPerson" >> beam.GroupByKey()
        | "WriteSheets" >> beam.FlatMap(WriteSheet(settings))
    )
    rows = (
        (albums, results) | "RowSources" >> beam.Flatten() | "Rows" >> beam.FlatMap(keep, ("row",))
    )
    start = pipeline | "Start" >> beam.Create([("start", None)])  # an empty library too
    _ = (
        (start, rows, people)
        | "ReportParts" >> beam.Flatten()
        | "KeyForReport" >> beam.Map(under_one_key)
        | "GatherReport" >> beam.GroupByKey()
        | "WriteRecords" >> beam.Map(WriteRecords(settings))
    )


def restore_archive(
    items, settings: ArchiveSettings, named: NamedPeople, beam_args: list[str]
) -> None:
    """Runs the pipeline to the end: the output folder then holds what `restore_library`
    writes for the same library (`faces.csv` last)."""
    pipeline = new_pipeline(beam_args)
    build(pipeline, settings, items, named)
    run_to_completion(pipeline, str(settings.output.path))
