"""What a restoring run leaves for a person to check: faces.csv, people.json, contact sheets.

`OUT/people/<safe name>.png` shows one person: their guides first, then each restored
face before and after (at most `SHEET_FACES`; the title says how many more), every
panel labelled. `OUT/people.json` lists each person's guides and faces with what was
done (docs/PEOPLE.md section 5). All are written atomically and byte-identically for
the same input.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import cv2
import numpy as np

from gfrnet_tf.io import save_image
from gfrnet_tf.io.atomic import atomic_writer
from gfrnet_tf.io.paths import safe_name
from gfrnet_tf.people import FACES_CSV, Person, write_faces_csv
from gfrnet_tf.restoration.batches import THUMBNAIL_PX, FacePicture, PhotoResult, thumbnail
from gfrnet_tf.visualize import labelled_panels

PEOPLE_JSON = "people.json"
PEOPLE_FOLDER = "people"
SHEET_FACES = 24
SHEET_COLUMNS = 8


class ContactSheets:
    """Collects, per person, the pictures a contact sheet shows (bounded per person).

    `guides` maps a guide's `FaceRecord.key` to its crop (`batches.guide_crops`).
    """

    def __init__(self, guides: Mapping[tuple[str, int], np.ndarray], limit: int = SHEET_FACES):
        self.guides = guides
        self.limit = limit
        self.pictures: dict[str, list[FacePicture]] = {}
        self.counts: dict[str, int] = {}

    def add(self, result: PhotoResult) -> None:
        for picture in result.pictures:
            self.counts[picture.person] = self.counts.get(picture.person, 0) + 1
            self._keep(picture.person, [picture])

    def merge(self, other: "ContactSheets") -> None:
        """Adds what `other` collected (another worker's photos): the same sheets as if
        every photo had been added here, whatever the order."""
        for person, count in other.counts.items():
            self.counts[person] = self.counts.get(person, 0) + count
        for person, pictures in other.pictures.items():
            self._keep(person, pictures)

    def forget(self, person: str) -> None:
        """Lets go of a person's pictures once their sheet is written."""
        self.pictures.pop(person, None)
        self.counts.pop(person, None)

    def _keep(self, person: str, pictures) -> None:
        """A person's `limit` first pictures by face key, in whatever order they come."""
        shown = self.pictures.setdefault(person, [])
        shown.extend(pictures)
        shown.sort(key=lambda picture: picture.key)
        del shown[self.limit :]

    def sheet(self, person: Person) -> np.ndarray:
        """One person's sheet: guides, then restored faces before -> after, by photo."""
        panels, labels = [], []
        for guide in person.guides:
            crop = self.guides.get(guide.key)
            if crop is not None:
                panels.append(thumbnail(crop))
                labels.append(f"guide {_file(guide.photo)} {guide.index}")
        for picture in sorted(self.pictures.get(person.name, []), key=lambda p: p.key):
            panels += [picture.before, picture.after]
            labels += [f"{_file(picture.key[0])} {picture.key[1]}", "restored"]
        if not panels:
            panels, labels = [np.full((THUMBNAIL_PX, THUMBNAIL_PX, 3), 255, np.uint8)], ["-"]
        blank = np.full_like(panels[0], 255)
        while len(panels) % SHEET_COLUMNS:
            panels.append(blank)
            labels.append("")
        rows = [panels[i : i + SHEET_COLUMNS] for i in range(0, len(panels), SHEET_COLUMNS)]
        names = [labels[i : i + SHEET_COLUMNS] for i in range(0, len(labels), SHEET_COLUMNS)]
        more = self.counts.get(person.name, 0) - len(self.pictures.get(person.name, []))
        title = f"{person.name}: {self.counts.get(person.name, 0)} restored" + (
            f" ({more} more not shown)" if more > 0 else ""
        )
        grid = labelled_panels(rows, names)
        return np.concatenate([_title(title, grid.shape[1]), grid], axis=0)


def people_json(rows: Iterable[dict], people: Sequence[Person]) -> bytes:
    """`{"people": [{"name", "named", "guides", "faces"}]}`, sorted, `indent=1`."""
    faces: dict[str, list] = {}
    for row in rows:
        if row["person"]:
            faces.setdefault(row["person"], []).append(
                [row["photo"], int(row["face"]), row["action"]]
            )
    listed = [
        {
            "name": person.name,
            "named": person.named,
            "guides": [list(guide.key) for guide in person.guides],
            "faces": sorted(faces.get(person.name, [])),
        }
        for person in sorted(people, key=lambda p: p.name)
    ]
    return (json.dumps({"people": listed}, indent=1, sort_keys=True) + "\n").encode("utf-8")


def write_sheet(output, person: Person, sheets: ContactSheets) -> None:
    """`output/people/<safe name>.png`: one person's contact sheet."""
    folder = Path(output) / PEOPLE_FOLDER
    folder.mkdir(exist_ok=True)
    save_image(folder / f"{safe_name(person.name)}.png", sheets.sheet(person))


def write_records(output, rows: Sequence[dict], people: Sequence[Person]) -> None:
    """`output/faces.csv` and `output/people.json`."""
    output = Path(output)
    write_faces_csv(rows, output / FACES_CSV)
    with atomic_writer(output / PEOPLE_JSON) as stream:
        stream.write(people_json(rows, people))


def _file(photo: str) -> str:
    """A panel's label names the file (the title names the person, rows of faces.csv the
    full path)."""
    return photo.rsplit("/", 1)[-1]


def _title(text: str, width: int) -> np.ndarray:
    strip = np.full((24, width, 3), 255, np.uint8)
    ascii_text = text.encode("ascii", "replace").decode("ascii")
    cv2.putText(
        strip, ascii_text, (4, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA
    )
    return strip
