"""Identity distances of degraded faces to clean guides: where the acceptance rule comes from.

    python -m benchmarks.identity_rule [--seeds 6] [--json out.json]

Real people: the White House portraits in tests/data/people (Obama: 3 photos, Biden: 1)
and the bundled astronaut (Eileen Collins). Each photo's face is cropped as in training
(256 px) and degraded with Eq. 4 at the evaluation protocol's 4x and 8x settings
(`data.degrade`, scale fixed, blur / noise / JPEG drawn from the paper's sets, seeded),
then found, located and embedded exactly as the library does (`FaceAnalyser.faces`).
Each degraded face is measured against every clean guide: same person from another
photo, same person from the same photo, and other people. The candidate rules
(`AcceptanceRule`) are then applied as `match_person` does, with each person's guides
leaving out the degraded face's own photo where the person has another one.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import tensorflow as tf

from gfrnet_tf.data.degrade import degrade, paper_parameter_sets, sample_degradation
from gfrnet_tf.faces.crop import crop_face
from gfrnet_tf.io import load_image
from gfrnet_tf.people import AcceptanceRule, match_person
from gfrnet_tf.restoration.analysis import FaceAnalyser
from gfrnet_tf.sample import load_sample

PEOPLE_DIR = Path(__file__).resolve().parents[1] / "tests" / "data" / "people"
PEOPLE = {
    "obama": ["obama.jpg", "obama2.jpg", "obama3.jpg"],
    "biden": ["biden.jpg"],
    "astronaut": [None],  # the bundled sample
}
SCALES = {"4x": 4.0, "8x": 8.0}
RULES = [(d, r) for d in (0.45, 0.5, 0.55, 0.6) for r in (1.0, 1.15, 1.25, 1.4)]


def photos():
    for person, files in PEOPLE.items():
        for name in files:
            image = load_sample()[0] if name is None else load_image(PEOPLE_DIR / name)
            yield person, name or "astronaut", image


def degraded_crop(crop: np.ndarray, scale: float, seed: int) -> np.ndarray:
    sets = dict(paper_parameter_sets(), scale=(scale,))
    drawn = sample_degradation(tf.constant([seed, 7]), sets)
    image = degrade(tf.constant(crop, tf.float32) / 255.0, drawn, tf.constant([seed, 11]))
    return np.round(image.numpy() * 255.0).astype(np.uint8)


def measure(seeds: int) -> dict:
    analyser = FaceAnalyser()
    distance = analyser.identity.distance
    guides, crops = [], []
    for person, name, image in photos():
        (face,) = analyser.faces(image, name)
        guides.append((person, name, face.embedding))
        crops.append((person, name, crop_face(image, face.box)[0]))
    results = {"pairs": {}, "decisions": {}, "undetected": {}}
    for setting, scale in SCALES.items():
        queries = []
        for person, name, crop in crops:
            for seed in range(seeds):
                found = analyser.faces(degraded_crop(crop, scale, seed), f"{name}@{seed}")
                if not found:
                    results["undetected"][setting] = results["undetected"].get(setting, 0) + 1
                    continue
                face = max(found, key=lambda f: f.box[2] * f.box[3])
                queries.append((person, name, face.embedding))
        pairs = {"same person, other photo": [], "same person, same photo": [], "other": []}
        for person, name, embedding in queries:
            for guide_person, guide_name, guide in guides:
                kind = (
                    "other"
                    if guide_person != person
                    else "same person, same photo"
                    if guide_name == name
                    else "same person, other photo"
                )
                pairs[kind].append(float(distance(embedding, guide)))
        results["pairs"][setting] = {k: summary(v) for k, v in pairs.items()}
        results["decisions"][setting] = {
            f"{d} / {r}": decisions(queries, guides, AcceptanceRule(d, r), distance)
            for d, r in RULES
        }
    return results


def decisions(queries, guides, rule, distance) -> dict:
    """Counts of right / wrong / skipped matches, guides of the query's own photo left out
    where its person has another photo."""
    counts = {"right": 0, "wrong": 0, "skipped": 0}
    people = sorted({p for p, _, _ in guides})
    for person, name, embedding in queries:
        embeddings = []
        for candidate in people:
            own = [(n, e) for p, n, e in guides if p == candidate]
            others = [e for n, e in own if n != name]
            embeddings.append(others if others else [e for _, e in own])
        match = match_person(embedding, embeddings, rule, people, distance)
        if match.index is None:
            counts["skipped"] += 1
        else:
            counts["right" if people[match.index] == person else "wrong"] += 1
    return counts


def summary(values) -> dict:
    values = np.asarray(values)
    if not len(values):
        return {"count": 0}
    return {
        "count": int(len(values)),
        "min": round(float(values.min()), 4),
        "p05": round(float(np.percentile(values, 5)), 4),
        "median": round(float(np.median(values)), 4),
        "p95": round(float(np.percentile(values, 95)), 4),
        "max": round(float(values.max()), 4),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    emit(measure(args.seeds), args.json)


def emit(results: dict, path: Path | None) -> None:
    """Prints the results as JSON, and writes them to `path` when given."""
    text = json.dumps(results, indent=1)
    print(text)
    if path:
        path.write_text(text + "\n")


if __name__ == "__main__":
    main()
