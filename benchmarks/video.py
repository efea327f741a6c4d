"""Video restoration (`gfrnet_tf.video`): speed per backend with its stages, and flicker.

Speed (default): `restore_clip` on the synthetic clip of the bundled face
(`gfrnet_tf.video.synthetic`) at 640x480, where the face's crop window is ~340 px and is
restored at 256 px, with TFLite int8 and fp32 models of the paper's pix2pix widths (random
weights: speed does not depend on them; int8 calibrated on the clip's crops), detection
included (MTCNN every `--detect_every` frames, optical flow between), identity off.
Frames/s are given with the time per frame of each stage: decode, detection, tracking
(flow, corners, smoothing), crop, model, paste, encode (H.264 crf 18), measures; the
baseline in the same run is decoding and encoding alone. Ratios are to the baseline.

Flicker (`--flicker_model`): the same clip at 160x128 with a trained model, restored
with tracking (the default settings), per frame (a detection per frame, no smoothing),
and both again with crop windows rounded to whole pixels as photos use them; flicker is
the mean absolute difference of consecutive face crops after undoing the clip's known
motion (`video.measures.face_crop`), beside the input's and the clean clip's, with PSNR
of the face region against the clean clip and the identity distance to the guide.

    python -m benchmarks.video [--frames 60] [--detect_every 10] [--workdir DIR]
    python -m benchmarks.video --flicker_model runs/demo/train [--flicker_size 64]

`--workdir` keeps the .tflite files (the two conversions take minutes) for the next run.
Note `uptime` beside any figure: the machine is shared.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from gfrnet_tf.data.images import to_model_range
from gfrnet_tf.export.tflite import convert_to_tflite
from gfrnet_tf.faces import crop_face, detect_faces
from gfrnet_tf.models.gfrnet import build_gfrnet
from gfrnet_tf.models.layers import PIX2PIX_WIDTHS
from gfrnet_tf.restoration.photos import PhotoRestorer
from gfrnet_tf.restoration.restorer import load_restorer
from gfrnet_tf.sample import load_sample
from gfrnet_tf.video import clip, streaming, subpixel, synthetic
from gfrnet_tf.video.identity import optional_embedder
from gfrnet_tf.video.measures import Flicker, face_crop
from gfrnet_tf.video.reader import VideoReader
from gfrnet_tf.video.report import ClipMeasures
from gfrnet_tf.video.tracking import FaceTracker
from gfrnet_tf.video.writer import VideoWriter

SPEED_FRAME = (640, 480)
MODEL_SIZE = 256
_SUBPIXEL_WINDOW = subpixel.window_around
STAGES = ("decode", "detection", "tracking", "crop", "model", "paste", "encode", "measures")


class Stopwatch:
    """Seconds spent per stage, gathered by wrapping the functions that do each stage."""

    def __init__(self):
        self.seconds = dict.fromkeys(STAGES, 0.0)

    def timed(self, stage, function):
        def run(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[stage] += time.perf_counter() - start

        return run

    def timed_iterator(self, stage, iterator):
        while True:
            start = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                return
            finally:
                self.seconds[stage] += time.perf_counter() - start
            yield item


@contextlib.contextmanager
def patched(owner, name, value):
    original = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, original)


@contextlib.contextmanager
def instrumented(watch: Stopwatch):
    """Times the stages of `restore_clip` where they happen, without changing what it does."""
    frames = VideoReader.frames
    update = FaceTracker.update
    with contextlib.ExitStack() as stack:
        stack.enter_context(
            patched(
                VideoReader,
                "frames",
                lambda self, *a: watch.timed_iterator("decode", frames(self, *a)),
            )
        )

        # Tracking = the tracker's update minus the detections inside it (timed apart).
        def timed_update(self, image):
            before, start = watch.seconds["detection"], time.perf_counter()
            try:
                return update(self, image)
            finally:
                inside = watch.seconds["detection"] - before
                watch.seconds["tracking"] += time.perf_counter() - start - inside

        stack.enter_context(patched(FaceTracker, "update", timed_update))
        smoother_push = streaming.TrackSmoother.push
        stack.enter_context(
            patched(streaming.TrackSmoother, "push", watch.timed("tracking", smoother_push))
        )
        stack.enter_context(patched(subpixel, "crop", watch.timed("crop", subpixel.crop)))
        stack.enter_context(patched(subpixel, "paste", watch.timed("paste", subpixel.paste)))
        stack.enter_context(patched(VideoWriter, "write", watch.timed("encode", VideoWriter.write)))
        stack.enter_context(patched(VideoWriter, "close", watch.timed("encode", VideoWriter.close)))
        stack.enter_context(patched(ClipMeasures, "add", watch.timed("measures", ClipMeasures.add)))
        yield


class TimedRestorer:
    """A restorer whose calls count as the "model" stage."""

    def __init__(self, restorer, watch: Stopwatch):
        self.image_size = restorer.image_size
        self._run = watch.timed("model", restorer)

    def __call__(self, degraded, guide):
        return self._run(degraded, guide)


def speed_models(workdir: Path, clip_path: Path) -> dict[str, Path]:
    """`{"tflite int8": path, "tflite fp32": path}` at 256 px, converted once into `workdir`."""
    paths = {q: workdir / f"video-pix2pix-{MODEL_SIZE}-{q}.tflite" for q in ("int8", "fp32")}
    if all(p.is_file() for p in paths.values()):
        return {f"tflite {q}": p for q, p in paths.items()}
    model = build_gfrnet({"widths": PIX2PIX_WIDTHS})
    zeros = np.zeros((1, MODEL_SIZE, MODEL_SIZE, 3), np.float32)
    model({"degraded": zeros, "guide": zeros})  # built before conversion
    guide = crop_face(load_sample()[0], (51, 51, 154, 154), size=MODEL_SIZE)[0]
    calibration = []
    with VideoReader(clip_path) as reader:
        for frame in reader.frames():
            if frame.index % 4 == 0 and len(calibration) < 8:
                face = detect_faces(frame.image)[0]
                crop = crop_face(frame.image, face.box, size=MODEL_SIZE)[0]
                calibration.append(
                    {
                        "degraded": to_model_range(crop[None]).numpy(),
                        "guide": to_model_range(guide[None]).numpy(),
                    }
                )
    for quantization, path in paths.items():
        if not path.is_file():
            start = time.perf_counter()
            path.write_bytes(
                convert_to_tflite(model, MODEL_SIZE, quantization, representative_data=calibration)
            )
            print(f"  converted {path.name} in {time.perf_counter() - start:.0f} s", flush=True)
    return {f"tflite {q}": p for q, p in paths.items()}


def pass_through_seconds(source: Path, target: Path) -> float:
    """Decoding and encoding the clip alone, the floor of any restoration."""
    start = time.perf_counter()
    with VideoReader(source) as reader, VideoWriter(target, reader.info) as writer:
        for frame in reader.frames(writer.copy_audio):
            writer.write(frame.image, frame.pts)
    return time.perf_counter() - start


def speed(args):
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="video-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    width, height = SPEED_FRAME
    source = workdir / f"clip-{width}x{height}-{args.frames}.mp4"
    if not source.is_file():
        synthetic.write_clip(
            source,
            (synthetic.degraded_frame(t, width, height) for t in range(args.frames)),
            width,
            height,
        )
    models = speed_models(workdir, source)
    print(f"load before: {uptime()}")
    floor = pass_through_seconds(source, workdir / "pass.mp4")
    rows = [("decode + encode only", args.frames / floor, {})]
    runs = [(name, path, args.detect_every) for name, path in models.items()]
    runs.append(("tflite int8, detection every frame", models["tflite int8"], 1))
    for name, path, detect_every in runs:
        watch = Stopwatch()
        restorer = load_restorer(path)
        photos = PhotoRestorer(TimedRestorer(restorer, watch), restorer.image_size)
        photos.add_guide(load_sample()[0], "sample", pose=False)
        videos = streaming.VideoRestorer(
            photos, detect_every=detect_every, detect=watch.timed("detection", detect_faces)
        )
        detect_faces(np.zeros((64, 64, 3), np.uint8))  # build MTCNN outside the timing
        with instrumented(watch):
            report = clip.restore_clip(videos, source, workdir / "out.mp4", progress=False)
        watch.seconds["other"] = report.seconds - sum(watch.seconds.values())
        rows.append((name, report.frames / report.seconds, watch.seconds))
    print(f"load after: {uptime()}")
    print(
        f"\n{args.frames} frames {width}x{height}, face restored at {MODEL_SIZE} px, "
        f"detection every {args.detect_every} frames unless said\n"
    )
    stages = (*STAGES, "other")
    print(
        "| run | frames/s | x pass-through time | " + " | ".join(f"{s} ms" for s in stages) + " |"
    )
    print("|---|---:|---:|" + "---:|" * len(stages))
    for name, fps, seconds in rows:
        cells = [f"{1000 * seconds[s] / args.frames:.1f}" if seconds else "" for s in stages]
        print(f"| {name} | {fps:.2f} | {rows[0][1] / fps:.1f} | " + " | ".join(cells) + " |")


def flicker(args):
    restorer = load_restorer(args.flicker_model)
    size = args.flicker_size or restorer.image_size
    photos = PhotoRestorer(restorer, size)
    photos.add_guide(load_sample()[0], "sample", pose=False)
    frames = list(synthetic.frames(args.frames))
    clean = [synthetic.clean_frame(t) for t in range(args.frames)]
    identity = optional_embedder()
    settings = {"tracked": {}, "per frame": {"detect_every": 1, "smoothing_radius": 0}}
    rows = [("input (degraded)", [f.image for f in frames], None), ("clean", clean, None)]
    for rounded in (False, True):
        for name, kwargs in settings.items():
            label = f"{name}, {'whole-pixel' if rounded else 'sub-pixel'} windows"
            measures = ClipMeasures([g.crop for g in photos.guides], photos.margin, identity, 5)
            with patched(
                subpixel, "window_around", _rounded_window if rounded else _SUBPIXEL_WINDOW
            ):
                images = []
                for restored in streaming.VideoRestorer(photos, **kwargs).restore_frames(frames):
                    images.append(restored.image)
                    measures.add(restored)
            rows.append((label, images, measures.distances))
    print(f"load: {uptime()}\n")
    baseline = _flicker(rows[2][1])
    print(f"{args.frames} frames 160x128, model {args.flicker_model} at {size} px\n")
    print(
        "| frames | flicker | x tracked sub-pixel | face PSNR vs clean dB "
        "| identity distance to guide |"
    )
    print("|---|---:|---:|---:|---|")
    for label, images, distances in rows:
        value = _flicker(images)
        who = (
            f"{distances.mean:.3f} +- {distances.std:.3f}" if distances and distances.count else ""
        )
        print(
            f"| {label} | {value:.2f} | {value / baseline:.2f} "
            f"| {_psnr(images, clean):.2f} | {who} |"
        )


def _rounded_window(box, margin, size):
    """The window as photos cut it (`faces.crop.square_window`): whole pixels."""
    window = _SUBPIXEL_WINDOW(box, margin, size)
    side = max(round(window.side), 1)
    x0 = round(window.x0 + window.side / 2 - side / 2)
    y0 = round(window.y0 + window.side / 2 - side / 2)
    return subpixel.Window(float(x0), float(y0), float(side), size)


def _face_crops(images):
    return [
        face_crop(image, synthetic.photo_to_frame(t), synthetic.FACE_REGION, 64)
        for t, image in enumerate(images)
    ]


def _flicker(images):
    measure = Flicker()
    for crop in _face_crops(images):
        measure.add({0: crop})
    return measure.value


def _psnr(images, clean):
    error = np.mean((np.array(_face_crops(images), np.float64) - np.array(_face_crops(clean))) ** 2)
    return 10 * np.log10(255**2 / error) if error else float("inf")


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--detect_every", type=int, default=10)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--flicker_model", default=None)
    parser.add_argument("--flicker_size", type=int, default=None)
    args = parser.parse_args()
    if args.flicker_model:
        flicker(args)
    else:
        speed(args)


if __name__ == "__main__":
    main()
