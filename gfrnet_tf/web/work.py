"""The page's work: the library's restoration stages (restoration.library), run for one
visitor, and what the page shows of their result.

Nothing is decided here: which person a face is, which guide restores it, whether it is
kept, are the library's decisions (docs/PEOPLE.md), shown as they came. The page adds
only the choices a person makes on it, each as an explicit override of one face's
decision: keep this face as it was, or restore it with this guide. Files live in the
visitor's folder under names the server made:

    library/photo-0001.jpg, library/clip-0002.mp4   the uploads (the library's root)
    guides/person-01/photo-0003.jpg                 guide photos, a folder per person
    out/                                            the library's output (faces.csv, ...)
    view/                                           thumbnails and face crops for the page
"""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from gfrnet_tf.io import load_image
from gfrnet_tf.io.paths import safe_name
from gfrnet_tf.people import Decision
from gfrnet_tf.people.decision import KEEP, RESTORE, with_chosen_guide
from gfrnet_tf.restoration import library
from gfrnet_tf.restoration.outputs import OutputFolder
from gfrnet_tf.web.uploads import CLIP, PHOTO, UploadRefused, shown_name, store_upload

DEFAULT_IMAGE_SIZE = 256
THUMBNAIL_PX = 240
FACE_PX = 280
# A face is shown with this much of the photo around its box, on each side (box widths).
FACE_CONTEXT = 0.3
EXCLUDED = "kept as it was, as you asked"
_MAX_PEOPLE = 30


@dataclasses.dataclass
class Upload:
    """A file the visitor added: what it is, its shown name, where it lies, its thumbnail."""

    kind: str
    name: str
    path: Path
    person: str | None = None
    thumb: str | None = None


@dataclasses.dataclass
class PhotoState:
    """One library item after a run: the library's plan for it and what came out."""

    item: object  # restoration.library.LibraryItem
    decisions: list  # the decisions it was last restored with (the page's overrides in)
    planned: list  # the library's own decisions
    result: object = None  # PhotoResult (rows), None when it had no face
    problem: str = ""


@dataclasses.dataclass
class Results:
    """A visitor's finished restoration: the library's plan, each item's state, file ids."""

    plan: object  # restoration.library.LibraryPlan
    photos: dict  # photo id -> PhotoState
    face_ids: dict  # face id -> (photo id, face index)
    restore_all: bool
    views: dict = dataclasses.field(default_factory=dict)  # photo id -> its view (for JSON)


class Studio:
    """The model and the library's stages for every visitor of one server.

    `restorer`: `restoration.restorer.load_restorer`'s callable; `image_size`: its input
    size; `analyser`: a `restoration.library.FaceAnalyser` (built on first use);
    `clips`: the library's clip stages, or None when PyAV is not installed.
    """

    def __init__(self, restorer, image_size: int, analyser=None, clips=None):
        self.restorer = restorer
        self.image_size = image_size
        self._analyser = analyser
        self.clips = clips

    @property
    def analyser(self):
        if self._analyser is None:
            self._analyser = library.FaceAnalyser()
        return self._analyser

    # ---- uploads (a thread of the server's pool; the visitor's lock held) ------------------

    def add_upload(self, visitor, stream, name: str, person: str):
        """Stores one uploaded file (or a zip's files) for the visitor: a photo to restore,
        or with `person` a guide photo of that person. `(added, refused)`."""
        with visitor.lock:
            if person:
                folder = self._person_folder(visitor, person)
            else:
                folder = visitor.folder / "library"
                folder.mkdir(exist_ok=True)
            stored, refused = store_upload(
                stream, name, folder, visitor.next_number, visitor.budget, clips=not person
            )
            added = []
            for upload in stored:
                entry = Upload(upload.kind, upload.name, upload.path, person or None)
                if upload.kind == PHOTO:
                    entry.thumb = visitor.serve(
                        _thumbnail(upload.path, visitor.folder / "view"), "image/jpeg"
                    )
                upload_id = visitor.new_id("u")
                visitor.uploads[upload_id] = entry
                added.append({"id": upload_id, "name": upload.name, "kind": upload.kind})
            return added, refused

    def _person_folder(self, visitor, person: str) -> Path:
        """The folder of the person named `person` (created for a new name)."""
        name = shown_name(person)
        people = visitor.__dict__.setdefault("people", {})
        if name not in people:
            if len(people) >= _MAX_PEOPLE:
                raise UploadRefused(name, f"more than {_MAX_PEOPLE} people")
            people[name] = f"person-{len(people) + 1:02d}"
        folder = visitor.folder / "guides" / people[name]
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def has_photos(self, visitor) -> bool:
        return any(u.person is None for u in visitor.uploads.values())

    def knows_face(self, visitor, face_id: str) -> bool:
        return visitor.results is not None and face_id in visitor.results.face_ids

    # ---- work (a worker thread; the visitor's lock held) -----------------------------------

    def restore(self, visitor, restore_all: bool, report) -> None:
        """Restores all the visitor's photos and clips; `visitor.results` shows them."""
        out = visitor.folder / "out"
        _empty(out)
        options = library.default_options(restore_all=restore_all)
        report.stage("Reading the guide photos")
        guides = visitor.folder / "guides"
        named = library.named_people(self.analyser, guides_dir=guides if guides.is_dir() else None)
        named = dataclasses.replace(named, people=tuple(_shown_people(visitor, named.people)))
        items = library.list_library(visitor.folder / "library")
        report.stage("Finding faces", len(items))
        plan = library.plan_library(
            items, self.analyser, options, named, self.clips, on_item=report.step
        )
        output = self._output(visitor)
        photos, face_ids = {}, {}
        for analysis in plan.analyses:
            photo_id = visitor.new_id("p")
            decisions = plan.decisions.get(analysis.item.photo, [])
            photos[photo_id] = PhotoState(
                analysis.item, list(decisions), list(decisions), problem=analysis.problem
            )
            for face in analysis.faces:
                face_ids[visitor.new_id("face")] = (photo_id, face.index)
        results = Results(plan, photos, face_ids, restore_all)
        todo = [p for p in photos.values() if p.decisions]
        report.stage("Restoring faces", len(todo))
        for state, result in zip(todo, self._restore_items(todo, plan, output)):
            state.result = result
            report.step()
        report.stage("Writing the report")
        library.write_library_report(out, plan, [p.result for p in todo])
        for photo_id in photos:
            self._draw(visitor, results, photo_id)
        visitor.results = results
        visitor.progress.message = _summary(results)

    def change_face(self, visitor, face_id: str, exclude, guide_id, report) -> None:
        """Restores one face's photo again, that face kept as it was (`exclude`) or
        restored with the guide `guide_id`."""
        results = visitor.results
        photo_id, index = results.face_ids[face_id]
        state = results.photos[photo_id]
        planned = next(d for d in state.planned if d.face.index == index)
        current = next(d for d in state.decisions if d.face.index == index)
        if exclude:
            changed = Decision(current.face, KEEP, EXCLUDED, current.person, distance=current.distance)
        elif guide_id is not None:
            person, guide = self._guide_choices(results, state)[guide_id]
            changed = with_chosen_guide(current.face, person, guide, results.plan.options)
        else:
            changed = planned
        state.decisions = [changed if d.face.index == index else d for d in state.decisions]
        report.stage("Restoring the photo again", 1)
        output = self._output(visitor)
        _remove_outputs(visitor.folder / "out", state.item)
        (state.result,) = self._restore_items([state], results.plan, output)
        report.stage("Writing the report")
        library.write_library_report(
            visitor.folder / "out", results.plan, [p.result for p in results.photos.values() if p.result]
        )
        self._draw(visitor, results, photo_id)
        visitor.progress.message = _summary(results)

    def _restore_items(self, states, plan, output):
        jobs = [(state.item, state.decisions) for state in states]
        settings = library.RestoreSettings(self.image_size, keep_sharper=not plan.options.restore_good_faces)
        return list(
            library.restore_planned(
                jobs, plan, self.restorer, self.analyser, output, settings, self.clips
            )
        )

    def _output(self, visitor) -> OutputFolder:
        return OutputFolder(visitor.folder / "out", visitor.folder / "library")

    def _guide_choices(self, results, state) -> dict:
        """`{guide id: (person, guide)}`: every guide of the people the photo's faces are
        decided against."""
        people = results.plan.people_of.get(state.item.album, ())
        return {
            _guide_id(guide): (person, guide) for person in people for guide in person.guides
        }

    # ---- what the page shows ---------------------------------------------------------------

    def _draw(self, visitor, results: Results, photo_id: str) -> None:
        """Makes the photo's face crops (before, after) and keeps its view for the page."""
        state = results.photos[photo_id]
        view_folder = visitor.folder / "view"
        view_folder.mkdir(exist_ok=True)
        upload = _upload_of(visitor, state.item.path)
        restored_path = _restored_path(visitor.folder / "out", state.item)
        photo = {
            "id": photo_id,
            "name": upload.name if upload else state.item.photo,
            "kind": state.item.kind,
            "problem": state.problem,
            "restored": None,
            "restored_name": None,
            "faces": [],
        }
        if restored_path is not None:
            download = f"{Path(photo['name']).stem}_restored{restored_path.suffix}"
            media = "video/mp4" if restored_path.suffix == ".mp4" else "image/png"
            photo["restored"] = visitor.serve(restored_path, media, download)
            photo["restored_name"] = download
        rows = {int(r["face"]): r for r in (state.result.rows if state.result else ())}
        if state.item.kind == PHOTO and state.decisions:
            original = load_image(state.item.path)
            after = load_image(restored_path) if restored_path else None
            choices = self._guide_choices(results, state)
            for decision in state.decisions:
                face_id = next(
                    i for i, key in results.face_ids.items() if key == (photo_id, decision.face.index)
                )
                photo["faces"].append(
                    self._face_view(
                        visitor, face_id, decision, rows.get(decision.face.index), original, after, choices
                    )
                )
        results.views[photo_id] = photo

    def _face_view(self, visitor, face_id, decision, row, original, after, choices) -> dict:
        action = row["action"] if row else _action(decision)
        status = action.split(":")[0]
        restored = status == "restored"
        folder = visitor.folder / "view"
        before_id = visitor.serve(_face_crop(original, decision.face.box, folder), "image/png")
        after_id = (
            visitor.serve(_face_crop(after, decision.face.box, folder), "image/png")
            if restored and after is not None
            else None
        )
        guide = decision.guide if restored else None
        return {
            "id": face_id,
            "index": decision.face.index,
            "person": decision.person,
            "status": {"restored": "restored", "kept": "kept", "skipped": "skipped"}[status],
            "status_text": _status_text(action),
            "before": before_id,
            "after": after_id,
            "guide": {"id": _guide_id(guide), "label": None} if guide else None,
            "distance_before": _number(row["distance_before"]) if row else decision.distance,
            "distance_after": _number(row["distance_after"]) if row else None,
            "excluded": decision.reason == EXCLUDED,
            "choices": [c for c in choices if not guide or c != _guide_id(guide)],
        }

    def view(self, visitor) -> dict:
        """The visitor's uploads, people and results, as the page's JSON."""
        people = {}
        for upload_id, upload in visitor.uploads.items():
            if upload.person:
                people.setdefault(upload.person, []).append(
                    {"id": upload_id, "name": upload.name, "thumb": upload.thumb}
                )
        uploads = [
            {"id": upload_id, "name": u.name, "kind": u.kind, "thumb": u.thumb}
            for upload_id, u in visitor.uploads.items()
            if u.person is None
        ]
        results = visitor.results
        return {
            "uploads": uploads,
            "people": [{"name": name, "guides": guides} for name, guides in people.items()],
            "results": None if results is None else self._results_view(visitor, results),
        }

    def _results_view(self, visitor, results: Results) -> dict:
        guides = {}
        for state in results.photos.values():
            for guide_id, (person, guide) in self._guide_choices(results, state).items():
                if guide_id not in guides:
                    guides[guide_id] = {
                        "id": guide_id,
                        "label": f"{person.name}: {_guide_label(visitor, guide)}",
                        "thumb": self._guide_thumb(visitor, results, guide),
                    }
        photos = []
        for view in results.views.values():
            for face in view["faces"]:
                if face["guide"]:
                    face["guide"] = guides.get(face["guide"]["id"], face["guide"])
            photos.append(view)
        return {
            "summary": _summary(results),
            "any_restored": any(v["restored"] for v in results.views.values()),
            "guides": list(guides.values()),
            "photos": photos,
        }

    def _guide_thumb(self, visitor, results: Results, guide) -> str:
        cache = visitor.__dict__.setdefault("guide_thumbs", {})
        if guide.key not in cache:
            crop = results.plan.guides.get(guide.key)
            path = visitor.folder / "view" / f"guide-{visitor.next_number()}.png"
            Image.fromarray(crop if crop is not None else np.zeros((8, 8, 3), np.uint8)).save(path)
            cache[guide.key] = visitor.serve(path, "image/png")
        return cache[guide.key]

    def zip_results(self, visitor) -> Path:
        """A zip of every restored photo and clip (under the names they were uploaded as)
        and the library's report (faces.csv, people.json, contact sheets)."""
        out = visitor.folder / "out"
        target = visitor.folder / "restored.zip"
        names = set()
        with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as archive:
            for view in visitor.results.views.values():
                if view["restored"]:
                    path = visitor.files[view["restored"]][0]
                    name = safe_name(view["restored_name"])
                    while name in names:
                        name = f"_{name}"
                    names.add(name)
                    archive.write(path, name)
            for path in sorted(out.rglob("*")):
                relative = path.relative_to(out).as_posix()
                if path.is_file() and relative.split("/")[0] in ("faces.csv", "people.json", "people"):
                    archive.write(path, f"report/{relative}")
        return target


def load_studio(model, image_size: int | None = None) -> Studio:
    """A `Studio` for the trained model at `model` (anything `load_restorer` takes), at
    `image_size` or the model's own size (else 256); clips when PyAV is installed."""
    from gfrnet_tf.restoration.restorer import load_restorer

    restorer = load_restorer(model)
    size = image_size or restorer.image_size or DEFAULT_IMAGE_SIZE
    return Studio(restorer, size, clips=library.optional_clip_stages())


def _shown_people(visitor, people):
    """The named people under the names the visitor typed (their folders are numbered)."""
    folders = {folder: name for name, folder in visitor.__dict__.get("people", {}).items()}
    return [dataclasses.replace(p, name=folders.get(p.name, p.name)) for p in people]


def _upload_of(visitor, path) -> Upload | None:
    return next((u for u in visitor.uploads.values() if str(u.path) == str(path)), None)


def _guide_id(guide) -> str:
    return f"g:{guide.photo}#{guide.index}"


def _guide_label(visitor, guide) -> str:
    """A guide as the visitor knows it: the uploaded file's name, and which face."""
    folder = visitor.folder
    path = folder / "guides" / guide.photo.split(":", 1)[1] if ":" in guide.photo else folder / "library" / guide.photo
    upload = _upload_of(visitor, path)
    name = upload.name if upload else guide.photo
    return f"{name}, face {guide.index + 1}"


def _restored_path(out: Path, item) -> Path | None:
    suffix = "_restored.mp4" if item.kind == CLIP else "_restored.png"
    path = out / f"{item.output}{suffix}"
    return path if path.is_file() else None


def _remove_outputs(out: Path, item) -> None:
    """The item's earlier output files, before it is restored again."""
    for path in out.glob(f"{item.output}_*"):
        path.unlink(missing_ok=True)


def _action(decision) -> str:
    if decision.action == RESTORE:
        return "restored"
    return f"{'kept' if decision.action == KEEP else 'skipped'}: {decision.reason}"


def _status_text(action: str) -> str:
    status, _, reason = action.partition(": ")
    if status == "restored":
        return "Restored"
    return f"{'Kept as it was' if status == 'kept' else 'Not restored'}: {reason}"


def _number(text: str):
    return float(text) if text else None


def _summary(results: Results) -> str:
    faces = [f for v in results.views.values() for f in v["faces"]]
    restored = sum(f["status"] == "restored" for f in faces)
    return (
        f"{len(results.views)} file(s), {len(faces)} face(s): {restored} restored, "
        f"{len(faces) - restored} left as they were"
    )


def _empty(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)


def _thumbnail(path: Path, folder: Path) -> Path:
    """A small JPEG of an accepted photo (its size already checked from the header)."""
    folder.mkdir(exist_ok=True)
    target = folder / f"{path.stem}-thumb.jpg"
    with Image.open(path) as image:
        image.draft("RGB", (THUMBNAIL_PX, THUMBNAIL_PX))
        image = ImageOps.exif_transpose(image).convert("RGB")
        image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
        image.save(target, quality=85)
    return target


def _face_crop(image: np.ndarray, box, folder: Path) -> Path:
    """The face with some of the photo around it, `FACE_PX` on its longer side, as a PNG."""
    x, y, w, h = box
    pad = FACE_CONTEXT * max(w, h)
    side = max(w, h) + 2 * pad
    cx, cy = x + w / 2, y + h / 2
    x0, y0 = max(0, int(cx - side / 2)), max(0, int(cy - side / 2))
    x1, y1 = min(image.shape[1], int(cx + side / 2)), min(image.shape[0], int(cy + side / 2))
    crop = Image.fromarray(image[y0:y1, x0:x1])
    scale = FACE_PX / max(crop.size)
    crop = crop.resize((max(1, round(crop.width * scale)), max(1, round(crop.height * scale))), Image.LANCZOS)
    path = folder / f"face-{len(list(folder.iterdir())) + 1}.png"
    crop.save(path)
    return path
