"""Restoring the decided faces of many photos, in model batches of a fixed size.

A photo is decoded again only if one of its faces is to be restored; its faces are
cropped as in training and queued, and the model runs on `batch_size` faces at a time
from consecutive photos (the last batch filled with black faces, so a face's result
never depends on how many others share its call). Each restored face is pasted back
and measured with the same `FaceQuality` score that chose the guides: a face that comes
out less sharp than it went in (a weak model on a clean photo) is kept as it was unless
forced. The photo's files go to OUT under its output stem; its `faces.csv` rows and small
before/after pictures for the contact sheets come back.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Iterator, Mapping, Sequence

import cv2
import numpy as np

from gfrnet_tf.errors import BadImageError
from gfrnet_tf.faces.crop import DEFAULT_MARGIN, crop_face
from gfrnet_tf.io import load_image
from gfrnet_tf.people import Decision, FaceRecord, face_quality, faces_csv_row
from gfrnet_tf.people.decision import KEEP, RESTORE
from gfrnet_tf.restoration.listing import LibraryItem
from gfrnet_tf.restoration.paste import paste_face
from gfrnet_tf.visualize import PAIR_PANELS, flow_to_rgb, labelled_grid

DEFAULT_BATCH_SIZE = 8
THUMBNAIL_PX = 128
SHARPER_THAN_RESULT = "sharper than the model's result"


@dataclasses.dataclass(frozen=True)
class RestoreSettings:
    """`image_size`: the model's input size; `keep_sharper`: keep a face the model would
    make less sharp (off with `--restore_all`); `flow`: also write the flow pictures."""

    image_size: int
    margin: float = DEFAULT_MARGIN
    batch_size: int = DEFAULT_BATCH_SIZE
    keep_sharper: bool = True
    flow: bool = False


@dataclasses.dataclass(frozen=True)
class FacePicture:
    """One restored face for a contact sheet: `before` and `after`, `THUMBNAIL_PX` square."""

    person: str
    key: tuple[str, int]
    before: np.ndarray
    after: np.ndarray


@dataclasses.dataclass(frozen=True)
class PhotoResult:
    """What became of one photo: its `faces.csv` rows, its restored faces' pictures, and
    for a clip its report line."""

    photo: str
    rows: tuple[dict, ...]
    pictures: tuple[FacePicture, ...] = ()
    note: str = ""


def guide_crops(
    guides: Iterable[FaceRecord], sources: Mapping[str, str], image_size: int, margin=DEFAULT_MARGIN
) -> dict[tuple[str, int], np.ndarray]:
    """The model-size crop of each guide, keyed by `FaceRecord.key`; each photo decoded once.
    `sources` maps a guide's `photo` to its file; one that cannot be decoded is left out
    (the faces it would restore are then skipped)."""
    by_photo: dict[str, list[FaceRecord]] = {}
    for guide in guides:
        by_photo.setdefault(guide.photo, []).append(guide)
    crops = {}
    for photo in sorted(by_photo):
        try:
            image = load_image(sources[photo])
        except (BadImageError, KeyError):
            continue
        for guide in by_photo[photo]:
            crops[guide.key] = crop_face(image, guide.box, margin, image_size)[0]
    return crops


@dataclasses.dataclass
class _Photo:
    item: LibraryItem
    decisions: list[Decision]
    image: np.ndarray | None = None
    jobs: list = dataclasses.field(default_factory=list)  # (decision, crop, window)
    results: list = dataclasses.field(default_factory=list)  # (restored, warped, flow)


def restore_photos(
    jobs: Iterable[tuple[LibraryItem, Sequence[Decision]]],
    guides: Mapping[tuple[str, int], np.ndarray],
    restorer,
    analyser,
    output,
    settings: RestoreSettings,
) -> Iterator[PhotoResult]:
    """Restores each `(item, its faces' decisions)`; one `PhotoResult` per item, in order.

    `restorer`: `restorer.load_restorer`'s callable; `analyser`: the `FaceAnalyser` that
    measures identity after restoration; `output`: the run's `OutputFolder`.
    """
    pending: list[_Photo] = []
    for item, decisions in jobs:
        photo = _prepare(item, list(decisions), guides, settings)
        pending.append(photo)
        if sum(len(p.jobs) for p in pending) >= settings.batch_size:
            yield from _finish(pending, guides, restorer, analyser, output, settings)
            pending = []
    yield from _finish(pending, guides, restorer, analyser, output, settings)


def restore_photo(item, decisions, guides, restorer, analyser, output, settings) -> PhotoResult:
    """`restore_photos` for one photo (a page's upload, a Beam element)."""
    return next(restore_photos([(item, decisions)], guides, restorer, analyser, output, settings))


def _prepare(item, decisions, guides, settings) -> _Photo:
    photo = _Photo(item, decisions)
    wanted = [d for d in decisions if d.action == RESTORE and d.guide.key in guides]
    if not wanted:
        return photo
    try:
        photo.image = load_image(item.path)
    except BadImageError:
        return photo  # the rows say why (see `_rows`)
    for decision in wanted:
        crop, window = crop_face(
            photo.image, decision.face.box, settings.margin, settings.image_size
        )
        photo.jobs.append((decision, crop, window))
    return photo


def _finish(pending, guides, restorer, analyser, output, settings) -> Iterator[PhotoResult]:
    jobs = [(photo, job) for photo in pending for job in photo.jobs]
    size = settings.image_size
    for start in range(0, len(jobs), settings.batch_size):
        chunk = jobs[start : start + settings.batch_size]
        degraded = np.zeros((settings.batch_size, size, size, 3), np.uint8)
        guide = np.zeros_like(degraded)
        for row, (_, (decision, crop, _)) in enumerate(chunk):
            degraded[row], guide[row] = crop, guides[decision.guide.key]
        result = restorer(degraded, guide)
        for row, (photo, _) in enumerate(chunk):
            flow = None if result.flow is None else result.flow[row]
            photo.results.append((result.restored[row], result.warped_guide[row], flow))
    for photo in pending:
        yield _written(photo, guides, analyser, output, settings)


def _written(photo: _Photo, guides, analyser, output, settings) -> PhotoResult:
    decided = {d.face.key: d for d in photo.decisions}
    failures = {}
    for d in photo.decisions:
        if d.action == RESTORE and d.guide.key not in guides:
            failures[d.face.key] = "the guide photo cannot be read again"
        elif d.action == RESTORE and photo.image is None:
            failures[d.face.key] = "the photo cannot be read again"
    image, accepted = photo.image, []
    for (decision, crop, window), (restored, warped, flow) in zip(photo.jobs, photo.results):
        box = (window.x0, window.y0, window.x0 + window.side, window.y0 + window.side)
        pasted = paste_face(image, restored, box)
        after = face_quality(pasted, decision.face.box, decision.face.landmarks).score
        if settings.keep_sharper and after < decision.face.quality.score:
            decided[decision.face.key] = dataclasses.replace(
                decision, action=KEEP, reason=SHARPER_THAN_RESULT
            )
            continue
        image = pasted
        accepted.append((decision, crop, restored, warped, flow))
    distances = {}
    if accepted:
        embeddings = analyser.embed(image, [a[0].face for a in accepted])
        for (decision, *_), embedding in zip(accepted, embeddings):
            distances[decision.face.key] = float(
                analyser.identity.distance(embedding, decision.guide.embedding)
            )
        output.write(photo.item.output, _images(image, accepted, guides, settings))
    rows = tuple(
        faces_csv_row(d, distance_after=distances.get(key), failure=failures.get(key))
        for key, d in decided.items()
    )
    pictures = tuple(
        FacePicture(d.person, d.face.key, thumbnail(crop), thumbnail(restored))
        for d, crop, restored, _, _ in accepted
    )
    return PhotoResult(photo.item.photo, rows, pictures)


def _images(image, accepted, guides, settings) -> list[tuple[str, np.ndarray]]:
    """`(suffix, image)` of a photo's outputs, the whole photo last: a photo whose restored
    version exists has all its outputs."""
    images = []
    for decision, crop, restored, warped, flow in accepted:
        k, guide = decision.face.index, decision.guide
        labels = [PAIR_PANELS[0], f"guide: {guide.photo} face {guide.index}", *PAIR_PANELS[2:4]]
        panels = [crop, guides[guide.key], warped, restored]
        images.append((f"_face{k}.png", restored))
        images.append((f"_face{k}_compare.png", labelled_grid(labels, [panels])))
        if settings.flow and flow is not None:
            images.append((f"_face{k}_flow.png", flow_to_rgb(flow)))
    images.append(("_restored.png", image))
    return images


def thumbnail(image: np.ndarray) -> np.ndarray:
    """`image` shrunk to a contact sheet's `THUMBNAIL_PX` square."""
    return cv2.resize(image, (THUMBNAIL_PX, THUMBNAIL_PX), interpolation=cv2.INTER_AREA)
