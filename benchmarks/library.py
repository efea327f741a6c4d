"""Restoring a generated photo library by person: speed per stage, memory, decision accuracy.

    python -m benchmarks.library --photos 500 --backends int8,savedmodel --workdir DIR
    python -m benchmarks.library --photos 2000 --backends int8 --workdir DIR   # peak RSS

The library: `--photos` photos of 640x480 in albums (folders) of `--album` photos, each
with one or two faces of five real people (Obama, Biden, the astronaut, tests/data/people)
pasted on a smooth random background at a random size, mirrored or not, half of the
photos degraded with Eq. 4 at a scale of 2-4 (seeded). The model has the paper's
pix2pix widths and random weights (speed does not depend on the values), exported once
into `--workdir` as a SavedModel and an int8 `.tflite`.

The stages are the library's own (`gfrnet_tf.restoration.library`), composed as
`restore_library` composes them, with each timed in CPU seconds of the process
(`time.process_time`, all threads): detect (MTCNN), landmarks (dlib's 68), embed
(dlib's ResNet), quality, group (`find_people` + `decide_faces`), restore (crops, the
model, pasting, the check after) and write (the photo's files and the report).
photos/s per core = photos / CPU seconds. Decision accuracy against the true people:
pairwise precision and recall of the grouping (faces of one album), the share of
restored faces whose guide shows the same person, and the share of undegraded faces
left untouched. Peak RSS is the process's `ru_maxrss`, also noted every 250 photos of each
stage; the library and the models are made once per `--workdir`, in a child process.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import multiprocessing
import os
import resource
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2
import keras
import numpy as np
import tensorflow as tf

from benchmarks.identity_rule import emit
from gfrnet_tf.data.degrade import degrade, fixed_degradation
from gfrnet_tf.export import export_savedmodel
from gfrnet_tf.export.tflite import convert_to_tflite
from gfrnet_tf.faces import detect as detect_module
from gfrnet_tf.io import load_image, save_image
from gfrnet_tf.models.gfrnet import build_gfrnet
from gfrnet_tf.models.layers import PIX2PIX_WIDTHS
from gfrnet_tf.people import decide_faces, face_quality
from gfrnet_tf.restoration import analysis as analysis_module
from gfrnet_tf.restoration.library import (
    FaceAnalyser,
    LibraryPlan,
    LibraryReport,
    RestoreSettings,
    default_options,
    guide_crops,
    library_people,
    list_library,
    restore_photos,
)
from gfrnet_tf.restoration.outputs import OutputFolder
from gfrnet_tf.restoration.restorer import load_restorer
from gfrnet_tf.sample import load_sample

SIZE = 256
PEOPLE_DIR = Path(__file__).resolve().parents[1] / "tests" / "data" / "people"
PEOPLE = {"obama": ["obama", "obama2", "obama3"], "biden": ["biden"], "astronaut": [None]}
WIDTH, HEIGHT = 640, 480


class Timer:
    """CPU seconds per stage name."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, stage: str):
        start = time.process_time()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.process_time() - start

    def wrap(self, stage: str, function):
        def timed(*args, **kwargs):
            with self(stage):
                return function(*args, **kwargs)

        return timed


def portraits():
    tiles = []
    for person, names in PEOPLE.items():
        for name in names:
            image = load_sample()[0] if name is None else load_image(PEOPLE_DIR / f"{name}.jpg")
            tiles.append((person, image))
    return tiles


def generate(root: Path, count: int, album: int, seed: int = 0) -> dict:
    """Writes the library; `{photo: [person of face 0 (left), face 1]}`."""
    rng = np.random.default_rng(seed)
    tiles = portraits()
    truth = {}
    for index in range(count):
        low = rng.integers(60, 200, 3)
        high = rng.integers(60, 200, 3)
        ramp = np.linspace(0, 1, WIDTH)[None, :, None]
        photo = np.broadcast_to(low + (high - low) * ramp, (HEIGHT, WIDTH, 3)).copy()
        photo += rng.normal(0, 6, photo.shape)
        faces = 1 + int(rng.random() < 0.5)
        people = []
        for slot in range(faces):
            person, tile = tiles[rng.integers(len(tiles))]
            height = int(rng.integers(180, 300))
            tile = cv2.resize(tile, (round(tile.shape[1] * height / tile.shape[0]), height))
            if rng.random() < 0.5:
                tile = tile[:, ::-1]
            half = WIDTH // faces
            x = int(slot * half + rng.integers(0, max(half - tile.shape[1], 1)))
            y = int(rng.integers(0, HEIGHT - height))
            width = min(tile.shape[1], WIDTH - x)
            photo[y : y + height, x : x + width] = tile[:, :width]
            people.append(person)
        photo = np.clip(photo, 0, 255).astype(np.uint8)
        degraded = rng.random() < 0.5
        if degraded:
            setting = fixed_degradation(
                {"blur": 1.2, "scale": float(rng.integers(2, 5)), "noise": 3.0, "jpeg_quality": 40}
            )
            image = degrade(
                tf.constant(photo, tf.float32) / 255.0, setting, tf.constant([index, 0])
            )
            photo = np.round(image.numpy() * 255.0).astype(np.uint8)
        name = f"album{index // album:03d}/photo{index:05d}{'_old' if degraded else ''}.png"
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        save_image(path, photo)
        truth[name] = people
    return truth


def models(workdir: Path, backends) -> dict[str, Path]:
    """The SavedModel and int8 `.tflite` of a random pix2pix-width model, made once."""
    keras.utils.set_random_seed(0)
    paths = {"savedmodel": workdir / "savedmodel", "int8": workdir / "gfrnet-int8.tflite"}
    if all(paths[b].exists() for b in backends):
        return paths
    model = build_gfrnet(
        {"widths": PIX2PIX_WIDTHS, "discriminator_widths": (8, 16), "local_size": 16}
    )
    model.build({"degraded": (None, SIZE, SIZE, 3), "guide": (None, SIZE, SIZE, 3)})
    if "savedmodel" in backends and not paths["savedmodel"].exists():
        export_savedmodel(model, paths["savedmodel"], SIZE)
    if "int8" in backends and not paths["int8"].exists():
        sample = load_sample()[0].astype(np.float32) / 127.5 - 1.0
        calibration = [{"degraded": sample[None], "guide": sample[None]}] * 4
        paths["int8"].write_bytes(convert_to_tflite(model, SIZE, "int8", calibration))
    return paths


def make_inputs(workdir: Path, backends, photos: int, album: int) -> tuple[dict[str, Path], Path]:
    """The models and the library, made once per workdir (in a child process, so that the
    converter's and the generator's memory do not count in the measured peak RSS)."""
    paths = models(workdir, backends)
    root = workdir / f"library-{photos}"
    truth_file = workdir / f"truth-{photos}.json"  # written last: a complete library
    if not truth_file.exists():
        partial = truth_file.with_name(truth_file.name + ".partial")
        partial.write_text(json.dumps(generate(root, photos, album)))
        os.replace(partial, truth_file)
    return paths, root


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


class MemoryTrace:
    """The peak RSS so far after every `every` photos of a stage: a flat line is the
    evidence that memory does not grow with the library."""

    def __init__(self, every: int = 250):
        self.every = every
        self.mb: dict[str, dict[int, float]] = {}

    def note(self, stage: str, photos: int) -> None:
        if photos % self.every == 0:
            self.mb.setdefault(stage, {})[photos] = peak_rss_mb()


def analyse(root: Path, timer: Timer, trace: MemoryTrace):
    """The analysis stage with its parts timed (the library's own calls, wrapped)."""
    analyser = FaceAnalyser()
    analyser.landmarks.locate = timer.wrap("landmarks", analyser.landmarks.locate)
    analyser.identity.embed = timer.wrap("embed", analyser.identity.embed)
    analysis_module.detect_faces = timer.wrap("detect", detect_module.detect_faces)
    analysis_module.face_quality = timer.wrap("quality", face_quality)
    with timer("list"):
        items = list_library(root)
    with timer("decode"):
        analyses = []
        for item in items:
            analyses.append(analyser.analyse(item))
            trace.note("analysed", len(analyses))
    # the restoring stage's own calls count as restoring
    del analyser.landmarks.locate, analyser.identity.embed
    analysis_module.detect_faces, analysis_module.face_quality = (
        detect_module.detect_faces,
        face_quality,
    )
    # decode = what is left of analyse once its parts are counted
    timer.seconds["decode"] -= sum(
        timer.seconds.get(k, 0.0) for k in ("detect", "landmarks", "embed", "quality")
    )
    return analyser, analyses


def pairwise(labels_true, labels_found) -> tuple[float, float]:
    """Pairwise precision and recall of a grouping."""
    same_true = labels_true[:, None] == labels_true[None, :]
    same_found = labels_found[:, None] == labels_found[None, :]
    upper = np.triu(np.ones_like(same_true), 1)
    both = (same_true & same_found & upper).sum()
    return both / max((same_found & upper).sum(), 1), both / max((same_true & upper).sum(), 1)


def accuracy(analyses, people_of, decided, truth) -> dict:
    true_of = {}  # by position: a photo's k-th pasted face fills the k-th of its halves
    for analysis in analyses:
        pasted = truth[analysis.item.photo]
        for face in analysis.faces:
            x, _, width, _ = face.box
            true_of[face.key] = pasted[
                min(int((x + width / 2) * len(pasted) / WIDTH), len(pasted) - 1)
            ]
    precision, recall, counted = [], [], 0
    by_album = {}
    for _, decisions in decided:
        for d in decisions:
            by_album.setdefault(d.face.album, []).append(d)
    for album, decisions in by_album.items():
        keyed = [d for d in decisions if d.person]
        if len(keyed) < 2:
            continue
        t = np.array([true_of[d.face.key] for d in keyed])
        f = np.array([d.person for d in keyed])
        p, r = pairwise(t, f)
        precision.append(p)
        recall.append(r)
        counted += len(keyed)
    restored = [d for _, ds in decided for d in ds if d.action == "restore"]
    right = sum(true_of[d.face.key] == true_of.get(d.guide.key, "?") for d in restored)
    clean = [d for a, ds in decided for d in ds if not a.item.photo.endswith("_old.png")]
    untouched = sum(d.action != "restore" for d in clean)
    return {
        "grouping_pairwise_precision": round(float(np.mean(precision)), 4) if precision else None,
        "grouping_pairwise_recall": round(float(np.mean(recall)), 4) if recall else None,
        "faces_with_a_person": counted,
        "faces": sum(len(a.faces) for a in analyses),
        "restored": len(restored),
        "restored_with_own_persons_guide": right,
        "largest_guide_distance": round(max((d.distance for d in restored), default=0.0), 4),
        "clean_faces": len(clean),
        "clean_faces_untouched": untouched,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=500)
    parser.add_argument("--album", type=int, default=50)
    parser.add_argument("--backends", default="int8,savedmodel")
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    backends = args.backends.split(",")
    args.workdir.mkdir(parents=True, exist_ok=True)
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as child:
        paths, root = child.submit(
            make_inputs, args.workdir, backends, args.photos, args.album
        ).result()
    truth = json.loads((args.workdir / f"truth-{args.photos}.json").read_text())
    load = os.getloadavg()
    timer = Timer()
    trace = MemoryTrace()
    analyser, analyses = analyse(root, timer, trace)
    options = default_options()
    with timer("group"):
        people_of = library_people(analyses, (), options)
        decided = [
            (a, decide_faces(a.faces, people_of[a.item.album], options))
            for a in analyses
            if a.faces
        ]
    results = {"photos": args.photos, "load_before": [round(v, 2) for v in load]}
    results["accuracy"] = accuracy(analyses, people_of, decided, truth)
    shared = dict(timer.seconds)
    for backend in backends:
        stage = Timer()
        restorer = load_restorer(paths[backend])
        output = OutputFolder(args.workdir / f"out-{args.photos}-{backend}", root)
        output.write = stage.wrap("write", output.write)
        people = {p.name: p for ps in people_of.values() for p in ps}
        sources = {a.item.photo: a.item.path for a in analyses}
        with stage("restore"):
            guides = guide_crops((g for p in people.values() for g in p.guides), sources, SIZE)
            settings = RestoreSettings(SIZE)
            plan = LibraryPlan(
                options, tuple(analyses), people_of, {a.item.photo: d for a, d in decided}, guides
            )
            report = LibraryReport(plan, output.path)
            report.write_sheet = stage.wrap("write", report.write_sheet)
            for done, result in enumerate(
                restore_photos(plan.jobs(), guides, restorer, analyser, output, settings), start=1
            ):
                report.add(result)
                trace.note(f"restored ({backend})", done)
        stage.seconds["restore"] -= stage.seconds.get("write", 0.0)  # photos' files, sheets
        with stage("write"):
            report.write()
        rows = report.rows
        seconds = {**shared, **stage.seconds}
        total = sum(seconds.values())
        results[backend] = {
            "cpu_seconds": {k: round(v, 2) for k, v in seconds.items()},
            "photos_per_cpu_second": round(args.photos / total, 3),
            "restored_rows": sum(r["action"] == "restored" for r in rows),
        }
    results["peak_rss_mb"] = peak_rss_mb()
    results["peak_rss_mb_by_photos"] = trace.mb
    results["load_after"] = [round(v, 2) for v in os.getloadavg()]
    emit(results, args.json)


if __name__ == "__main__":
    main()
