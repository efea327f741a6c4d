"""The page's work: the library's restoration stages (`restoration.library`) for one
visitor, and the overrides a person makes on the page.

Nothing is decided here: which person a face is, which guide restores it, whether it is
kept, are the library's decisions (docs/PEOPLE.md), shown as they came. The page adds
only a person's own choices, each an explicit override of one face's decision (keep this
face as it was; restore it with this guide), after which that photo is restored again
with the library's `restore_planned` and the report rewritten. Files live in the
visitor's folder under names the server made:

    library/photo-0001.jpg, library/clip-0002.mp4   the uploads (the library's root)
    guides/person-01/photo-0003.jpg                 guide photos, a folder per person
    out/                                            the library's output (faces.csv, ...)
    view/                                           the uploads' thumbnails
    run/                                            the latest run's face crops and guides
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from gfrnet_tf.people import Decision
from gfrnet_tf.people.decision import KEEP, with_chosen_guide
from gfrnet_tf.restoration import library
from gfrnet_tf.restoration.listing import LONGEST_SUFFIX
from gfrnet_tf.restoration.outputs import OutputFolder
from gfrnet_tf.video import clip_stages
from gfrnet_tf.web.results import EXCLUDED, ItemState, Run
from gfrnet_tf.web.uploads import PHOTO, UploadRefused, shown_name, store_upload
from gfrnet_tf.web.views import Upload, draw_run, thumbnail
from gfrnet_tf.web.visitors import Visitor

MAX_PEOPLE = 30
NO_CLIP_GUIDES = "a guide is a photo, not a clip"
STARTED = "a restoration has started; to change the files, start over (Forget my photos)"
NO_CLIP_STAGES = "clips cannot be restored here (they need PyAV and the library's clip stages)"


class Studio:
    """The model and the library's stages, shared by every visitor of one server.

    `restorer`: `restoration.restorer.load_restorer`'s callable; `settings`: the library's
    `RestoreSettings` (model size, batch); `analyser`: a `FaceAnalyser` (built on first
    use: loading dlib's models takes seconds); `clips`: the library's clip stages
    (`gfrnet_tf.video.clip_stages`), or None to refuse clips.
    """

    def __init__(self, restorer, settings: library.RestoreSettings, analyser=None, clips=None):
        self.restorer = restorer
        self.settings = settings
        self._analyser = analyser
        self.clips = clips

    @property
    def analyser(self) -> library.FaceAnalyser:
        if self._analyser is None:
            self._analyser = library.FaceAnalyser()
        return self._analyser

    # ---- uploads (a thread of the server's pool) -------------------------------------------

    def add_upload(self, visitor: Visitor, stream, name: str, person: str):
        """Stores one uploaded file (or a zip's files): a photo or clip to restore, or with
        `person` a guide photo of that person. `(added, refused)`."""
        with visitor.lock:
            folder = self._person_folder(visitor, person) if person else visitor.folder / "library"
            folder.mkdir(parents=True, exist_ok=True)
            stored, refused = store_upload(
                stream,
                name,
                folder,
                visitor.next_number,
                visitor.budget,
                no_clips=NO_CLIP_GUIDES if person else ("" if self.clips else NO_CLIP_STAGES),
            )
            added = []
            for upload in stored:
                thumb = None
                if upload.kind == PHOTO:
                    thumb = visitor.serve(thumbnail(upload.path, visitor.view_folder), "image/jpeg")
                upload_id = visitor.new_id("u")
                visitor.uploads[upload_id] = Upload(
                    upload.kind, upload.name, upload.path, person or None, thumb
                )
                added.append({"id": upload_id, "name": upload.name, "kind": upload.kind})
            return added, refused

    @staticmethod
    def remove_upload(visitor: Visitor, upload_id: str) -> None:
        """Deletes one of the visitor's files and gives its bytes back to their limits;
        refused (`UploadRefused`) once a restoration has started, since its results are of
        these files (start over instead); `KeyError` for an id that is not theirs."""
        with visitor.lock:
            upload = visitor.uploads[upload_id]
            if visitor.busy or visitor.run is not None:
                raise UploadRefused(upload.name, STARTED)
            del visitor.uploads[upload_id]
            visitor.budget.give_back(upload.path.stat().st_size)
            upload.path.unlink()
            if upload.thumb is not None:
                visitor.files.pop(upload.thumb)[0].unlink()
            if upload.person and not any(upload.path.parent.iterdir()):
                upload.path.parent.rmdir()  # a person with no guide left is no person

    def _person_folder(self, visitor: Visitor, person: str) -> Path:
        """The guides folder of the person the visitor named `person` (numbered, never
        named after what the browser sent)."""
        name = shown_name(person)
        if name not in visitor.people:
            if len(visitor.people) >= MAX_PEOPLE:
                raise UploadRefused(name, f"more than {MAX_PEOPLE} people")
            visitor.people[name] = f"person-{len(visitor.people) + 1:02d}"
        return visitor.folder / "guides" / visitor.people[name]

    @staticmethod
    def has_photos(visitor: Visitor) -> bool:
        return any(u.person is None for u in visitor.uploads.values())

    @staticmethod
    def knows_face(visitor: Visitor, face_id: str, guide_id: str | None = None) -> bool:
        """Whether the visitor's run has this face (and `guide_id` among its choices)."""
        run = visitor.run
        if run is None or face_id not in run.faces:
            return False
        item_id, _ = run.faces[face_id]
        return guide_id is None or guide_id in run.guide_choices(run.items[item_id])

    # ---- work (a worker thread, the visitor's lock held) -----------------------------------

    def restore(self, visitor: Visitor, restore_all: bool, report) -> None:
        """Restores all the visitor's photos and clips into `out/`; sets `visitor.run`."""
        out = visitor.folder / "out"
        shutil.rmtree(out, ignore_errors=True)
        visitor.run = visitor.results = None
        options = library.default_options(restore_all=restore_all)
        settings = dataclasses.replace(self.settings, keep_sharper=not restore_all)
        report.stage("Reading the guide photos")
        guides = visitor.folder / "guides"
        named = library.named_people(self.analyser, guides_dir=guides if guides.is_dir() else None)
        named = dataclasses.replace(named, people=tuple(_as_typed(visitor, named.people)))
        items = library.list_library(visitor.folder / "library")
        report.stage("Finding faces", len(items))
        plan = library.plan_library(
            items, self.analyser, settings, options, named, self.clips, on_item=report.step
        )
        run = Run(plan, {}, {}, named.problems)
        for analysis in plan.analyses:
            item_id = visitor.new_id("i")
            decisions = plan.decisions.get(analysis.item.photo, [])
            run.items[item_id] = ItemState(
                analysis.item, analysis.problem, list(decisions), list(decisions)
            )
            for face in analysis.faces:
                run.faces[visitor.new_id("face")] = (item_id, face.index)
        todo = [state for state in run.items.values() if state.decisions]
        report.stage("Restoring faces", len(todo))
        jobs = [(state.item, state.decisions) for state in todo]
        output = OutputFolder(out, visitor.folder / "library", longest_suffix=LONGEST_SUFFIX)
        results = library.restore_planned(
            jobs, plan, self.restorer, self.analyser, output, settings, self.clips
        )
        for state, result in zip(todo, results):
            state.result = result
            report.step()
        self._finish(visitor, run, report)

    def change_face(self, visitor: Visitor, face_id: str, exclude, guide_id, report) -> None:
        """Restores one face's photo again with that face kept as it was (`exclude`),
        restored with the guide `guide_id`, or (neither) as the library decided."""
        run = visitor.run
        item_id, index = run.faces[face_id]
        state = run.items[item_id]
        planned = next(d for d in state.planned if d.face.index == index)
        current = next(d for d in state.decisions if d.face.index == index)
        if exclude:
            changed = Decision(
                current.face, KEEP, EXCLUDED, current.person, distance=current.distance
            )
        elif guide_id is not None:
            person, guide = run.guide_choices(state)[guide_id]
            changed = with_chosen_guide(current.face, person, guide, run.plan.options)
        else:
            changed = planned
        state.decisions = [changed if d.face.index == index else d for d in state.decisions]
        report.stage("Restoring the photo again", 1)
        out = visitor.folder / "out"
        for path in out.glob(f"{state.item.output}_*"):  # its earlier files; stems are ours
            path.unlink()
        settings = dataclasses.replace(
            self.settings, keep_sharper=not run.plan.options.restore_good_faces
        )
        output = OutputFolder(out, visitor.folder / "library", longest_suffix=LONGEST_SUFFIX)
        (state.result,) = library.restore_planned(
            [(state.item, state.decisions)],
            run.plan,
            self.restorer,
            self.analyser,
            output,
            settings,
            self.clips,
        )
        report.step()
        self._finish(visitor, run, report)

    def _finish(self, visitor: Visitor, run: Run, report) -> None:
        """Writes the library's report of the run as it now stands; the page's summary."""
        report.stage("Writing the report")
        library_report = library.LibraryReport(run.plan, visitor.folder / "out")
        for state in run.items.values():
            if state.result is not None:
                library_report.add(state.result)
        summary = library_report.write()
        visitor.progress.message = summary.describe()
        visitor.run = run
        visitor.results = draw_run(visitor, run, summary.describe())


def load_studio(model, image_size: int | None = None, batch_size: int = 1) -> Studio:
    """A `Studio` for the trained model at `model` (anything `load_restorer` takes), at
    `image_size` or the model's own size (else the library's default). Without PyAV a
    clip upload is refused with a line naming the `video` extra (reading its header needs
    PyAV too).

    `batch_size` 1: the library fills a short batch with blank faces, so with its default
    of 8 one visitor's one face costs eight (measured: README, "A page for your photos").
    """
    from gfrnet_tf.restoration.restorer import load_restorer

    restorer = load_restorer(model)
    size = image_size or restorer.image_size or library.DEFAULT_IMAGE_SIZE
    settings = library.RestoreSettings(size, batch_size=batch_size)
    return Studio(restorer, settings, clips=clip_stages())


def _as_typed(visitor: Visitor, people):
    """The named people under the names the visitor typed (their folders are numbered)."""
    typed = {folder: name for name, folder in visitor.people.items()}
    return [dataclasses.replace(p, name=typed.get(p.name, p.name)) for p in people]
