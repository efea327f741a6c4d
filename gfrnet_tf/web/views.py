"""What the page shows of a visitor's files and run, as JSON and small pictures.

Drawn in the worker thread when a run finishes (decoding photos for the face crops is no
work for the event loop); `/api/state` only serialises the result. Each face is shown as
the library left it: its `faces.csv` row (person, action and reason, guide, identity
distances) and the part of the photo around it, before and (when restored) after; a
clip's face, a track, the same at its sharpest frame (`FaceRecord.frame`), from the
uploaded clip and the restored one.
"""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from gfrnet_tf.io import load_image
from gfrnet_tf.io.paths import safe_name
from gfrnet_tf.web.results import EXCLUDED, Run
from gfrnet_tf.web.uploads import CLIP, PHOTO

THUMBNAIL_PX = 240
FACE_PX = 280
# A face is shown with this much of the photo around its box on each side (box widths).
FACE_CONTEXT = 0.3
# The library's output names (docs/PEOPLE.md section 5).
RESTORED_SUFFIX = {PHOTO: "_restored.png", CLIP: "_restored.mp4"}
MEDIA_TYPE = {".png": "image/png", ".mp4": "video/mp4"}
REPORT_FILES = ("faces.csv", "people.json", "people")
NOT_RESTORED = "skipped: not restored"


@dataclasses.dataclass(frozen=True)
class Upload:
    """A file the visitor added: what it is, the name shown, where it lies, its person (a
    guide) and its thumbnail's file id."""

    kind: str
    name: str
    path: Path
    person: str | None = None
    thumb: str | None = None


def page_state(visitor) -> dict:
    """The visitor's uploads, people and results, as the page's JSON."""
    people: dict[str, list] = {}
    uploads = []
    for upload_id, upload in visitor.uploads.items():
        entry = {"id": upload_id, "name": upload.name, "kind": upload.kind, "thumb": upload.thumb}
        if upload.person:
            people.setdefault(upload.person, []).append(entry)
        else:
            uploads.append(entry)
    return {
        "uploads": uploads,
        "people": [{"name": name, "guides": guides} for name, guides in people.items()],
        "results": visitor.results,
    }


def draw_run(visitor, run: Run, summary: str) -> dict:
    """The results part of the page's JSON for a finished run, face crops made (those of
    the run before are removed: a visitor restoring again and again uses no more disk)."""
    visitor.clear_run_folder()
    guides = {}
    items = []
    for item_id, state in run.items.items():
        choices = run.guide_choices(state)
        for gid, (person, guide) in choices.items():
            if gid not in guides:
                guides[gid] = {
                    "id": gid,
                    "label": f"{person.name}: {_guide_name(visitor, guide)}",
                    "thumb": _guide_thumb(visitor, run, guide),
                }
        items.append(_item_view(visitor, run, item_id, state, choices))
    for face in (face for item in items for face in item["faces"]):
        if face["guide"]:
            face["guide"] = guides[face["guide"]]
    unused = [
        {"name": _shown_path(visitor, path), "problem": problem}
        for path, problem in run.guide_problems
    ]
    return {
        "summary": summary,
        "guide_problems": unused,
        "any_restored": any(item["restored"] for item in items),
        "guides": list(guides.values()),
        "photos": items,
    }


def _item_view(visitor, run: Run, item_id: str, state, choices) -> dict:
    item = state.item
    upload = _upload_at(visitor, item.path)
    name = upload.name if upload else item.photo
    restored = visitor.folder / "out" / f"{item.output}{RESTORED_SUFFIX.get(item.kind, '')}"
    view = {
        "id": item_id,
        "name": name,
        "kind": item.kind,
        "problem": state.problem,
        "restored": None,
        "restored_name": None,
        "faces": [],
    }
    if item.kind in RESTORED_SUFFIX and restored.is_file():
        view["restored_name"] = f"{Path(name).stem}{RESTORED_SUFFIX[item.kind]}"
        view["restored"] = visitor.serve(
            restored, MEDIA_TYPE[restored.suffix], view["restored_name"]
        )
    if not state.decisions:
        return view
    rows = {int(row["face"]): row for row in state.result.rows} if state.result else {}
    actions = {
        d.face.index: rows[d.face.index]["action"] if d.face.index in rows else NOT_RESTORED
        for d in state.decisions
    }
    shown = {d.face.index: (d.face.frame or 0, d.face.box) for d in state.decisions}
    before = _crops(visitor, item.kind, item.path, shown)
    after = {}
    if view["restored"]:
        restored_shown = {i: shown[i] for i, a in actions.items() if a == "restored"}
        after = _crops(visitor, item.kind, restored, restored_shown)
    face_ids = {key: face_id for face_id, key in run.faces.items()}
    clip = item.kind == CLIP
    for decision in state.decisions:
        index = decision.face.index
        row = rows.get(index)
        is_restored = actions[index] == "restored" and view["restored"] is not None
        used = run.guides[decision.guide.key] if is_restored else None  # filled in by draw_run
        view["faces"].append(
            {
                "id": face_ids[(item_id, index)],
                "index": index,
                "person": row["person"] if row else decision.person,
                "status": actions[index].split(":")[0],
                "status_text": _status_text(actions[index]),
                "frames": row["frames"] if row else "",
                "shown_frame": decision.face.frame if clip else None,
                "before": before.get(index),
                "after": after.get(index),
                "guide": used,
                "distance_before": _number(row, "distance_before"),
                "distance_after": _number(row, "distance_after"),
                "excluded": decision.reason == EXCLUDED,
                "choices": [gid for gid in choices if gid != used],
            }
        )
    return view


def _crops(visitor, kind: str, path: Path, shown: dict) -> dict[int, str]:
    """`{face index: picture id}`: each face cut from the photo, or from the clip's frame
    it is shown at (`shown`: `{face index: (frame, box)}`), one frame decoded at a time."""
    at_frame: dict[int, list] = {}
    for index, (frame, box) in shown.items():
        at_frame.setdefault(frame, []).append((index, box))
    crops = {}
    for frame, image in _frames(kind, path, sorted(at_frame)):
        for index, box in at_frame[frame]:
            crops[index] = _face_crop(visitor, image, box)
    return crops


def _frames(kind: str, path: Path, frames):
    if not frames:
        return
    if kind == PHOTO:
        yield 0, load_image(path)
    else:
        from gfrnet_tf.video.reader import frames_at  # PyAV: clips have it

        yield from frames_at(path, frames)


def _status_text(action: str) -> str:
    status, _, reason = action.partition(": ")
    if status == "restored":
        return "Restored"
    return f"{'Left as it was' if status == 'kept' else 'Not restored'}: {reason}"


def _number(row, column):
    return float(row[column]) if row and row[column] else None


def _upload_at(visitor, path) -> Upload | None:
    return next((u for u in visitor.uploads.values() if str(u.path) == str(path)), None)


def _shown_path(visitor, path) -> str:
    """A file or folder of the visitor's as they know it: the uploaded name, the person."""
    upload = _upload_at(visitor, path)
    if upload is not None:
        return upload.name
    folders = {folder: name for name, folder in visitor.people.items()}
    return folders.get(Path(path).name, "a guide photo")


def _guide_name(visitor, guide) -> str:
    """A guide as the visitor knows it: the uploaded file's name (and which face, for a
    face of a library photo)."""
    if guide.photo.startswith("guides:"):
        path = visitor.folder / "guides" / guide.photo.removeprefix("guides:")
        face = ""
    else:
        path = visitor.folder / "library" / guide.photo
        face = f", face {guide.index + 1}"
    upload = _upload_at(visitor, path)
    return f"{upload.name if upload else guide.photo}{face}"


def _guide_thumb(visitor, run: Run, guide) -> str | None:
    crop = run.plan.guides.get(guide.key)
    if crop is None:
        return None
    path = visitor.run_folder / f"guide-{visitor.next_number()}.png"
    Image.fromarray(crop).save(path)
    return visitor.serve(path, "image/png")


def _face_crop(visitor, image: np.ndarray, box) -> str:
    """The face with some of the photo around it, `FACE_PX` on its longer side."""
    x, y, w, h = box
    side = max(w, h) * (1 + 2 * FACE_CONTEXT)
    cx, cy = x + w / 2, y + h / 2
    x0, y0 = max(0, int(cx - side / 2)), max(0, int(cy - side / 2))
    x1, y1 = min(image.shape[1], int(cx + side / 2)), min(image.shape[0], int(cy + side / 2))
    crop = Image.fromarray(image[y0:y1, x0:x1])
    scale = FACE_PX / max(crop.size)
    size = (max(1, round(crop.width * scale)), max(1, round(crop.height * scale)))
    path = visitor.run_folder / f"face-{visitor.next_number()}.png"
    crop.resize(size, Image.LANCZOS).save(path)
    return visitor.serve(path, "image/png")


def thumbnail(path: Path, folder: Path) -> Path:
    """A small JPEG of an accepted photo (its size already checked from its header)."""
    target = folder / f"{path.stem}-thumb.jpg"
    with Image.open(path) as image:
        image.draft("RGB", (THUMBNAIL_PX, THUMBNAIL_PX))
        small = ImageOps.exif_transpose(image).convert("RGB")
        small.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
        small.save(target, quality=85)
    return target


def zip_results(visitor) -> Path:
    """A zip of every restored photo and clip, named after the uploaded file, and the
    library's report (faces.csv, people.json, the contact sheets) under `report/`."""
    out = visitor.folder / "out"
    target = visitor.folder / "restored.zip"
    names: set[str] = set()
    with zipfile.ZipFile(target, "w") as archive:
        for item in visitor.results["photos"]:
            if item["restored"]:
                name = safe_name(item["restored_name"])
                while name in names:
                    name = f"_{name}"
                names.add(name)
                archive.write(visitor.files[item["restored"]][0], name)
        for path in sorted(out.rglob("*")):
            relative = path.relative_to(out).as_posix()
            if path.is_file() and relative.split("/")[0] in REPORT_FILES:
                archive.write(path, f"report/{relative}")
    return target
