"""Per-photo cost of `gfrnet-prepare` on one core, and the projected VGGFace2 wall time.

    python -m benchmarks.prepare [--photos 32] [--size 512] [--workers 1 8 32 128]

(after `pip install -e .`; in a bare checkout prefix `PYTHONPATH=.`)

Runs the pipeline's own per-photo code (`gfrnet_tf.pipelines.photo.prepare_photo`: decode,
MTCNN, crop, dlib 68 landmarks, PNG encode) on JPEGs of scikit-image's astronaut, with
TensorFlow pinned to one thread so the rate is per core, for photos of one size
(CASIA-WebFace is all 250x250) and of mixed sizes (VGGFace2). The pipeline detects one
photo per MTCNN call, because a batched call's boxes depend on the other photos of the
batch; the detection step alone is also timed as MTCNN batches of 16 (what the pipeline
did before), which is the speed that determinism costs. Each stage is also timed alone, as
a share of the whole step. Times are CPU seconds of this process, which stay the per-core
cost when other jobs share the machine; wall time is shown too.
"""

from __future__ import annotations

import argparse
import io
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

VGGFACE2_PHOTOS = 3_310_000
BATCH = 16


def _jpeg(size: tuple[int, int]) -> bytes:
    import cv2
    from PIL import Image
    from skimage import data

    image = cv2.resize(data.astronaut(), size, interpolation=cv2.INTER_AREA)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _seconds_per_photo(function, calls: int, photos_per_call: int) -> tuple[float, float]:
    """(CPU, wall) seconds per photo over `calls` calls after one warm-up call."""
    function(0)  # warm-up: graph tracing, predictor loading
    cpu, wall = time.process_time(), time.perf_counter()
    for call in range(calls):
        function(call)
    photos = calls * photos_per_call
    return ((time.process_time() - cpu) / photos, (time.perf_counter() - wall) / photos)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=16, help="photos per measurement")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 8, 32, 128])
    args = parser.parse_args()

    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from gfrnet_tf import faces
    from gfrnet_tf.io.images import decode_image
    from gfrnet_tf.pipelines.photo import FaceOptions, encode_png, prepare_photo

    rng = np.random.default_rng(0)
    same = [("a.jpg", "a", _jpeg((args.size, args.size)))] * args.photos
    mixed = [
        (f"{i}.jpg", "a", _jpeg(tuple(int(v) for v in rng.integers(250, 500, 2))))
        for i in range(args.photos)
    ]
    landmarks = faces.DlibLandmarks()
    # Filters off: this measures the cost of a kept photo, whatever its face size.
    options = FaceOptions(min_face_size=0, min_sharpness=0)

    def whole_step(photos):
        return lambda call: prepare_photo(photos[call][2], photos[call][0], "a", landmarks, options)

    def detect_one(images):
        return lambda call: faces.detect_faces(images[call])

    def detect_batched(images):
        return lambda call: faces.detect_faces_batch(images[call * BATCH : (call + 1) * BATCH])

    calls = max(1, args.photos // BATCH)
    print(
        f"{args.photos} photos per run, 1 TensorFlow thread, load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    seconds = {}
    for label, photos in [(f"{args.size}x{args.size}", same), ("mixed 250-500 px", mixed)]:
        images = [decode_image(data, name) for name, _, data in photos]
        runs = {
            f"{label}, whole step, one photo per call (the pipeline)": (
                whole_step(photos),
                args.photos,
                1,
            ),
            f"{label}, detection only, one photo per call": (detect_one(images), args.photos, 1),
            f"{label}, detection only, batches of {BATCH} (before)": (
                detect_batched(images),
                calls,
                BATCH,
            ),
        }
        for name, (function, count, per_call) in runs.items():
            seconds[name], wall = _seconds_per_photo(function, count, per_call)
            print(
                f"  {name:62s} {1000 * seconds[name]:6.1f} ms CPU ({1000 * wall:6.1f} wall)"
                f" = {1 / seconds[name]:5.2f} photos/s per core"
            )
        names = list(seconds)[-3:]
        print(
            f"  {label}: batched detection was {seconds[names[1]] / seconds[names[2]]:.2f}x "
            f"faster than one photo per call"
        )
    baseline = next(iter(seconds.values()))

    image = decode_image(same[0][2], "a.jpg")
    face = faces.best_face(image, "a.jpg")
    crop, _ = faces.crop_face(image, face.box)
    stages = {
        "decode": lambda _: decode_image(same[0][2], "a.jpg"),
        "detect (MTCNN)": lambda _: faces.detect_faces(image),
        "landmarks (dlib)": lambda _: landmarks.locate(image, face.box, ""),
        "crop + quality": lambda _: faces.sharpness(faces.crop_face(image, face.box)[0]),
        "encode (PNG)": lambda _: encode_png(crop),
    }
    print("stages of the single-photo step:")
    for name, function in stages.items():
        stage, _ = _seconds_per_photo(function, args.photos, 1)
        print(f"  {name:18s} {1000 * stage:7.1f} ms CPU  {stage / baseline:5.1%}")

    rate = seconds[list(seconds)[3]]
    print(
        f"VGGFace2 ({VGGFACE2_PHOTOS:,} photos) at the pipeline's mixed-size rate, per-photo "
        f"step only (no file I/O or shuffle), linear scaling assumed:"
    )
    for workers in args.workers:
        hours = VGGFACE2_PHOTOS * rate / workers / 3600
        print(f"  {workers:4d} single-core workers: {hours:7.1f} h")


if __name__ == "__main__":
    main()
