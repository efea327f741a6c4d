"""Per-photo cost of `gfrnet-prepare` on one core, and the projected VGGFace2 wall time.

    python benchmarks/prepare.py [--photos 20] [--size 512] [--workers 1 8 32 128]

(after `pip install -e .`; in a bare checkout prefix `PYTHONPATH=.`)

Runs the pipeline's own per-photo code (`pipelines.photo.prepare_photo`: JPEG decode,
MTCNN, crop, dlib 68 landmarks, PNG encode) on JPEGs of scikit-image's astronaut, with
TensorFlow pinned to one thread so the rate is per core. Each stage is also timed
alone, reported as a share of the full step measured in the same run.
"""

from __future__ import annotations

import argparse
import io
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

VGGFACE2_PHOTOS = 3_310_000


def _jpeg(size: int) -> bytes:
    import cv2
    from PIL import Image
    from skimage import data

    image = cv2.resize(data.astronaut(), (size, size), interpolation=cv2.INTER_AREA)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _seconds_per_call(function, repeats: int) -> tuple[float, float]:
    """(CPU, wall) seconds per call. CPU time of this one-thread process is the per-core
    cost even when other jobs share the machine; wall time shows how loaded it was."""
    function()  # warm-up: graph tracing, predictor loading
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(repeats):
        function()
    return ((time.process_time() - cpu) / repeats, (time.perf_counter() - wall) / repeats)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=20)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 8, 32, 128])
    args = parser.parse_args()

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from gfrnet_tf import faces
    from gfrnet_tf.io.images import decode_image
    from pipelines.photo import FaceOptions, encode_png, prepare_photo

    data = _jpeg(args.size)
    image = decode_image(data, "astronaut.jpg")
    face = faces.best_face(image, "astronaut.jpg")
    crop, _ = faces.crop_face(image, face.box)
    landmarks = faces.DlibLandmarks()
    stages = {
        "decode": lambda: decode_image(data, "astronaut.jpg"),
        "detect (MTCNN)": lambda: faces.detect_faces(image),
        "landmarks (dlib)": lambda: landmarks.locate(image, face.box, ""),
        "crop + quality": lambda: faces.sharpness(faces.crop_face(image, face.box)[0]),
        "encode (PNG)": lambda: encode_png(crop),
    }
    # Filters off: this measures the cost of a kept photo, whatever its face size.
    options = FaceOptions(min_face_size=0, min_sharpness=0)
    full, full_wall = _seconds_per_call(
        lambda: prepare_photo(data, "astronaut.jpg", "astronaut", landmarks, options),
        args.photos)
    print(f"{args.size}x{args.size} JPEG, {args.photos} photos, 1 TensorFlow thread, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"full per-photo step: {1000 * full:.1f} ms CPU ({1000 * full_wall:.1f} ms wall)"
          f" = {1 / full:.2f} photos/s per core")
    for name, function in stages.items():
        seconds, _ = _seconds_per_call(function, args.photos)
        print(f"  {name:18s} {1000 * seconds:7.1f} ms CPU  {seconds / full:5.1%} of the step")
    print(f"VGGFace2 ({VGGFACE2_PHOTOS:,} photos), per-photo step only (no I/O, no "
          f"shuffle), assuming linear scaling:")
    for workers in args.workers:
        hours = VGGFACE2_PHOTOS * full / workers / 3600
        print(f"  {workers:4d} single-core workers: {hours:8.1f} h")


if __name__ == "__main__":
    main()
