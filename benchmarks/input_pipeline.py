"""Input pipeline throughput at 256x256: in-graph Eq. 4 vs OpenCV in `tf.numpy_function`.

    python benchmarks/input_pipeline.py [--images=32 --batches=16 --rounds=3 --batch_size=8]

Writes a shard of synthetic 256x256 PNG pairs to a temporary folder, then times, in one
run and on the same shard, `make_dataset(training=True)` with
  - `none`: parse + flip only (degradation replaced by identity): the pipeline's floor;
  - `tf`: the in-graph degradation (`gfrnet_tf.data.degrade`), the default;
  - `opencv`: the same steps in OpenCV inside `tf.numpy_function`, as the reference
    implementations do (GaussianBlur, INTER_AREA down, AWGN, imencode JPEG, INTER_CUBIC up);
  - `tf+pose`: the default plus synthetic-pose guides.
Prints images/s and the ratio to `opencv`. Small by design (< 2 min on 2 busy cores).
"""

from __future__ import annotations

import math
import os
import tempfile
import time

import cv2
import numpy as np
import tensorflow as tf
from absl import app, flags

from gfrnet_tf.data import degrade, pipeline, records

flags.DEFINE_integer("images", 32, "pairs in the benchmark shard (the dataset repeats)")
flags.DEFINE_integer("batches", 16, "timed batches per variant and round, after 2 warm-up batches")
flags.DEFINE_integer("rounds", 3, "round-robin rounds; the best round of each variant counts")
flags.DEFINE_integer("batch_size", 8, "batch size")
FLAGS = flags.FLAGS
SIZE = 256


def _face_like(rng):
    """Smooth shading plus texture, so PNG decode and JPEG cost resemble a face crop."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    phase = rng.uniform(0, 2 * np.pi, 3)
    shading = 0.5 + 0.3 * np.sin(5 * xx[..., None] + phase) * np.cos(3 * yy[..., None])
    texture = cv2.GaussianBlur(rng.rand(SIZE, SIZE, 3), (0, 0), 1.0) * 0.2
    return np.clip((shading + texture) * 255, 0, 255).astype(np.uint8)


def _write_shard(folder, count):
    rng = np.random.RandomState(0)
    points = rng.uniform(64, 192, (count, 2, 68, 2)).astype(np.float32)
    examples = (
        records.encode_pair(_face_like(rng), _face_like(rng), points[i, 0], points[i, 1])
        for i in range(count)
    )
    path = os.path.join(folder, "bench-00000.tfrecord")
    records.write_shard(path, examples)
    return path


def _opencv_degrade_numpy(image, blur, scale, noise, quality, seed):
    """Eq. 4 with OpenCV on a float32 `[H, W, 3]` image in `[0, 1]`."""
    height, width = image.shape[:2]
    if blur > 0:
        size = 2 * math.ceil(3 * blur) + 1
        image = cv2.GaussianBlur(
            image, (size, size), float(blur), borderType=cv2.BORDER_REFLECT_101
        )
    small_size = (max(1, round(width / scale)), max(1, round(height / scale)))
    resized = small_size != (width, height)
    if resized:
        image = cv2.resize(image, small_size, interpolation=cv2.INTER_AREA)
    image = image + np.random.default_rng(seed.astype(np.uint64)).normal(
        0.0, noise / 255.0, image.shape
    )
    pixels = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    if quality > 0:
        _, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        pixels = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
    image = pixels.astype(np.float32) / 255.0
    if resized:
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(image, 0, 1).astype(np.float32)


def opencv_degrade(image, degradation, seed):
    """Drop-in `degradation_fn` running `_opencv_degrade_numpy` through `tf.numpy_function`."""
    args = [image] + [degradation[name] for name in ("blur", "scale", "noise", "jpeg_quality")]
    out = tf.numpy_function(_opencv_degrade_numpy, args + [seed], tf.float32, stateful=False)
    out.set_shape(image.shape)
    return out


def _no_degradation(image, degradation, seed):
    del degradation, seed
    return image


def _images_per_second(dataset, count, batch_size):
    """Times `count` batches from a fresh, warmed-up iterator (traced, buffers filled).

    The iterator is dropped afterwards: a live one keeps filling its prefetch buffer in
    the background and would steal CPU from (and pre-compute for) the next measurement.
    """
    batches = iter(dataset)
    for _ in range(2):
        next(batches)
    start = time.perf_counter()
    for _ in range(count):
        next(batches)
    rate = count * batch_size / (time.perf_counter() - start)
    del batches
    return rate


def main(argv):
    del argv
    config = pipeline.default_input_config()
    config.image_size = SIZE
    config.batch_size = FLAGS.batch_size
    config.shuffle_buffer = FLAGS.images
    pose_config = config.copy_and_resolve_references()
    pose_config.synthetic_pose.enabled = True
    variants = [
        ("none", config, _no_degradation),
        ("tf", config, degrade.degrade),
        ("opencv", config, opencv_degrade),
        ("tf+pose", pose_config, degrade.degrade),
    ]
    with tempfile.TemporaryDirectory() as folder:
        path = _write_shard(folder, FLAGS.images)
        datasets = {
            name: pipeline.make_dataset(path, cfg, training=True, degradation_fn=fn).repeat()
            for name, cfg, fn in variants
        }
        # Round-robin and keep each variant's best round: other load on a shared machine
        # then hits all variants alike instead of whichever happened to run at that time.
        rates = {name: 0.0 for name in datasets}
        for _ in range(FLAGS.rounds):
            for name, dataset in datasets.items():
                rate = _images_per_second(dataset, FLAGS.batches, config.batch_size)
                rates[name] = max(rates[name], rate)
    load = os.getloadavg()[0]
    print(
        f"\n{SIZE}x{SIZE}, batch {FLAGS.batch_size}, {os.cpu_count()} cores "
        f"(load {load:.1f}), tf {tf.__version__}"
    )
    print("| variant | images/s | vs opencv |\n| --- | ---: | ---: |")
    for name, rate in rates.items():
        print(f"| {name} | {rate:.1f} | {rate / rates['opencv']:.2f}x |")


if __name__ == "__main__":
    app.run(main)
