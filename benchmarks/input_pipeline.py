"""Input pipeline throughput: in-graph Eq. 4 vs OpenCV in `tf.numpy_function`; cache, service.

    python -m benchmarks.input_pipeline [--images=32 --batches=16 --rounds=3 --batch_size=8]
        [--threads=1,2]
    python -m benchmarks.input_pipeline --mode=services [--sizes=64,128]

Writes a shard of synthetic 256x256 PNG pairs to a temporary folder, then times, in one
run and on the same shard, `make_dataset(training=True)` with
  - `none`: parse + flip only (degradation replaced by identity): the pipeline's floor;
  - `tf`: the in-graph degradation (`gfrnet_tf.data.degrade`), the default;
  - `opencv`: the same steps in OpenCV inside `tf.numpy_function`, as the reference
    implementations do (GaussianBlur, INTER_AREA down, AWGN, imencode JPEG, INTER_CUBIC up);
  - `tf+pose`: the default plus synthetic-pose guides.
Each variant runs with tf.data's private thread pool at each `--threads` size (default 1
and all cores), so the table shows images/s per core and how they scale. Prints images/s
(wall), images per CPU-second of this process (what one core delivers, robust to other
load), the ratios to `opencv`, and the CPU time per image above the `none` floor (the cost
of Eq. 4 and the guide alone). Small by design (< 3 min on 2 busy cores).

`--mode=services` times, at each of `--sizes` on all cores, the in-graph pipeline without
and with `input.cache` ("memory" and a file prefix, filled by one pass before timing), the
OpenCV degradation with and without the memory cache (the in-graph / OpenCV ratio once
decode is cached), and the pipeline through the tf.data service with one worker in a
separate process on localhost (`gfrnet-data-service`) against direct. For the service,
"images per CPU-second" counts this (client) process only: what a GPU host still spends.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np
import tensorflow as tf
from absl import app, flags

from gfrnet_tf.data import degrade, pipeline, records
from gfrnet_tf.data import service as service_lib


def define_flags():
    """The command's flags, defined only when it runs: other benchmarks import this module's
    helpers, and absl flags defined at import would clash with the commands' own."""
    flags.DEFINE_integer("images", 32, "pairs in the benchmark shard (the dataset repeats)")
    flags.DEFINE_integer(
        "batches", 16, "timed batches per variant and round, after 2 warm-up batches"
    )
    flags.DEFINE_integer("rounds", 3, "round-robin rounds; the best round of each variant counts")
    flags.DEFINE_integer("batch_size", 8, "batch size")
    flags.DEFINE_list(
        "threads", None, "tf.data thread-pool sizes to time (default: 1 and all cores)"
    )
    flags.DEFINE_enum(
        "mode",
        "degradations",
        ["degradations", "services"],
        "degradations: the 256 px table; services: cache and tf.data service",
    )
    flags.DEFINE_list("sizes", ["64", "128"], "--mode=services: image sizes")


FLAGS = flags.FLAGS
SIZE = 256


def _face_like(rng, size):
    """Smooth shading plus texture, so PNG decode and JPEG cost resemble a face crop."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    phase = rng.uniform(0, 2 * np.pi, 3)
    shading = 0.5 + 0.3 * np.sin(5 * xx[..., None] + phase) * np.cos(3 * yy[..., None])
    texture = cv2.GaussianBlur(rng.rand(size, size, 3), (0, 0), 1.0) * 0.2
    return np.clip((shading + texture) * 255, 0, 255).astype(np.uint8)


def write_shard(folder, count, size=SIZE, name="bench"):
    """A shard of `count` face-like PNG pairs `size` px a side, landmarks in the middle half."""
    rng = np.random.RandomState(0)
    points = rng.uniform(size / 4, 3 * size / 4, (count, 2, 68, 2)).astype(np.float32)
    examples = (
        records.encode_pair(
            _face_like(rng, size), _face_like(rng, size), points[i, 0], points[i, 1]
        )
        for i in range(count)
    )
    path = os.path.join(folder, f"{name}-00000.tfrecord")
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


def with_threads(dataset, threads):
    """`dataset` on a private tf.data thread pool of `threads` threads (None: the default)."""
    options = tf.data.Options()
    options.threading.private_threadpool_size = threads or 0
    return dataset.with_options(options)


def throughput(dataset, count, batch_size):
    """`(images/s, images per CPU-second)` over `count` batches of a fresh, warmed-up iterator.

    The CPU-time figure (every thread of this process, `time.process_time`) is what one
    host core delivers, and stays meaningful on a loaded machine where wall time does not.
    The iterator is dropped afterwards: a live one keeps filling its prefetch buffer in
    the background and would steal CPU from (and pre-compute for) the next measurement.
    """
    batches = iter(dataset)
    for _ in range(2):
        next(batches)
    start, start_cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        next(batches)
    images = count * batch_size
    rates = images / (time.perf_counter() - start), images / (time.process_time() - start_cpu)
    del batches
    return rates


def best_rates(datasets, batch_size):
    """Each dataset's best `throughput` over `--rounds` round-robin rounds.

    Other load on a shared machine then hits all variants alike instead of whichever
    happened to run at that time.
    """
    rates = {key: (0.0, 0.0) for key in datasets}
    for _ in range(FLAGS.rounds):
        for key, dataset in datasets.items():
            rate = throughput(dataset, FLAGS.batches, batch_size)
            rates[key] = tuple(map(max, rates[key], rate))
    return rates


def main(argv):
    del argv
    if FLAGS.mode == "services":
        return services()
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
    cores = os.cpu_count()
    threads = sorted({int(t) for t in FLAGS.threads or (1, cores)})
    print(f"before: {uptime()}")
    with tempfile.TemporaryDirectory() as folder:
        path = write_shard(folder, FLAGS.images)
        datasets = {
            (name, count): with_threads(
                pipeline.make_dataset(path, cfg, training=True, degradation_fn=fn).repeat(), count
            )
            for name, cfg, fn in variants
            for count in threads
        }
        rates = best_rates(datasets, config.batch_size)
    print(f"after:  {uptime()}")
    print(f"\n{SIZE}x{SIZE}, batch {FLAGS.batch_size}, {cores} cores, tf {tf.__version__}")
    print(
        "| variant | threads | images/s | vs opencv | images per CPU-second | vs opencv "
        "| CPU-ms/image above `none` |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    )
    for (name, count), (rate, per_cpu) in rates.items():
        opencv_rate, opencv_per_cpu = rates[("opencv", count)]
        above = 1e3 * (1.0 / per_cpu - 1.0 / rates[("none", count)][1])
        print(
            f"| {name} | {count} | {rate:.1f} | {rate / opencv_rate:.2f}x | {per_cpu:.1f} "
            f"| {per_cpu / opencv_per_cpu:.2f}x | {above:.2f} |"
        )


SERVICE_VARIANTS = (  # name, input.cache, OpenCV degradation, through the tf.data service
    ("direct", "", False, False),
    ("cache memory", "memory", False, False),
    ("cache file", "file", False, False),
    ("opencv", "", True, False),
    ("opencv + cache memory", "memory", True, False),
    ("service, 1 worker", "", False, True),
)


def services():
    """`--mode=services`: cache on/off, in-graph vs OpenCV with cache, service vs direct."""
    sizes = [int(size) for size in FLAGS.sizes]
    print(f"before: {uptime()}")
    dispatcher = service_lib.start_dispatcher()
    address = service_lib.address(dispatcher, "127.0.0.1")
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gfrnet_tf.apps.data_service",
            f"--dispatcher={address}",
            "--worker_host=127.0.0.1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        worker.stdout.readline()  # "worker listening at ...": registered
        with tempfile.TemporaryDirectory() as folder:
            datasets = {}
            for size in sizes:
                path = write_shard(folder, FLAGS.images, size, name=f"bench-{size}")
                for name, cache, opencv, remote in SERVICE_VARIANTS:
                    config = pipeline.default_input_config()
                    config.update(
                        image_size=size,
                        batch_size=FLAGS.batch_size,
                        shuffle_buffer=FLAGS.images,
                        data_service=address if remote else "",
                        cache=os.path.join(folder, f"cache-{size}") if cache == "file" else cache,
                    )
                    dataset = pipeline.make_dataset(
                        path,
                        config,
                        training=True,
                        repeat=True,
                        degradation_fn=opencv_degrade if opencv else degrade.degrade,
                    )
                    for _ in dataset.take(FLAGS.images // FLAGS.batch_size + 1):
                        pass  # one full pass: the cache is complete before timing
                    datasets[(size, name)] = dataset
            rates = best_rates(datasets, FLAGS.batch_size)
    finally:
        worker.terminate()
        worker.wait()
    print(f"after:  {uptime()}")
    print(
        f"\nbatch {FLAGS.batch_size}, {os.cpu_count()} cores, tf {tf.__version__}; "
        "per CPU-second: this process only"
    )
    print(
        "| size | variant | images/s | vs direct | images per CPU-second | vs direct |\n"
        "| ---: | --- | ---: | ---: | ---: | ---: |"
    )
    for (size, name), (rate, per_cpu) in rates.items():
        direct, direct_per_cpu = rates[(size, "direct")]
        print(
            f"| {size} | {name} | {rate:.1f} | {rate / direct:.2f}x | {per_cpu:.1f} "
            f"| {per_cpu / direct_per_cpu:.2f}x |"
        )
    for size in sizes:
        cached_ratio = [
            rates[(size, name)][1] for name in ("cache memory", "opencv + cache memory")
        ]
        print(
            f"{size} px, decode cached: in-graph / OpenCV = "
            f"{cached_ratio[0] / cached_ratio[1]:.2f}x per CPU-second"
        )


def uptime():
    """The `uptime` line (load averages), to print next to every figure."""
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return f"{time.strftime('%H:%M:%S')} load average: {load}"


if __name__ == "__main__":
    define_flags()
    app.run(main)
