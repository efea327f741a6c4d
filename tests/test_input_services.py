"""input.cache and input.data_service: same images, new degradations, safe files, a
localhost service."""

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from gfrnet_tf.data import cache as cache_lib
from gfrnet_tf.data import pipeline, records
from gfrnet_tf.data import service as service_lib
from gfrnet_tf.errors import BadConfigError
from support import ROOT, checkout_env, free_port, run_checkout, run_module

SIZE = 32
RECORDS = 6  # two shards of 3; batch 2: three full batches per epoch


def _config(**changes):
    config = pipeline.default_input_config()
    config.update(image_size=SIZE, batch_size=2, shuffle_buffer=8, flip=False)
    config.update(changes)
    return config


def _write_shards(folder, per_shard=RECORDS // 2):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.RandomState(0)
    for shard in range(2):
        examples = []
        for _ in range(per_shard):
            target, guide = rng.randint(0, 256, (2, SIZE, SIZE, 3)).astype(np.uint8)
            points = rng.uniform(4, SIZE - 4, (2, 68, 2)).astype(np.float32)
            examples.append(records.encode_pair(target, guide, points[0], points[1]))
        records.write_shard(os.path.join(folder, f"pairs-{shard:05d}.tfrecord"), examples)
    return os.path.join(folder, "pairs-*.tfrecord")


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return _write_shards(str(tmp_path_factory.mktemp("shards")))


def _batches(dataset, count=None):
    if count is not None:
        dataset = dataset.take(count)
    return [tf.nest.map_structure(np.asarray, batch) for batch in dataset]


def _by_target(batches):
    """`{target bytes: (degraded, degradation)}` of one epoch (flips off: targets are keys)."""
    found = {}
    for inputs, targets in batches:
        for i, target in enumerate(targets["target"]):
            draw = tuple(
                float(targets["degradation"][name][i]) for name in sorted(targets["degradation"])
            )
            found[target.tobytes()] = (inputs["degraded"][i], draw)
    return found


def _assert_same(first, second):
    tf.nest.map_structure(np.testing.assert_array_equal, first, second)


def _cache_files(folder):
    return sorted(path.name for path in Path(folder).iterdir())


@pytest.mark.parametrize("kind", ["memory", "file"])
def test_cache_keeps_the_decoded_images_and_draws_new_degradations_every_epoch(
    shards, tmp_path, kind
):
    cache = "memory" if kind == "memory" else str(tmp_path / "cache" / "train")
    plain = _batches(pipeline.make_dataset(shards, _config(), training=False))
    cached = pipeline.make_dataset(shards, _config(cache=cache), training=False)
    _assert_same(_batches(cached), plain)  # the pass that fills the cache
    _assert_same(_batches(cached), plain)  # read from it
    train = pipeline.make_dataset(shards, _config(cache=cache), training=True, repeat=True)
    batches = _batches(train, 2 * RECORDS // 2)
    epochs = [_by_target(batches[:3]), _by_target(batches[3:])]
    stored = sorted(t.tobytes() for _, targets in plain for t in targets["target"])
    for epoch in epochs:
        assert sorted(epoch) == stored  # every record once, its image as decoded
    for key in stored:
        assert not np.array_equal(epochs[0][key][0], epochs[1][key][0])
    assert sum(epochs[0][key][1] != epochs[1][key][1] for key in stored) >= RECORDS - 1


def test_a_second_run_reads_the_file_cache_without_decoding(shards, tmp_path):
    prefix = str(tmp_path / "train")
    config = _config(cache=prefix, skip_corrupt=True)  # its counter sees every decode
    first, second = pipeline.SkippedRecords(), pipeline.SkippedRecords()
    written = _batches(pipeline.make_dataset(shards, config, training=False, skipped=first))
    name = Path(
        cache_lib.cache_name(prefix, pipeline.list_shards(shards), pipeline.PAIR_KEYS, config)
    )
    assert _cache_files(tmp_path) == sorted(
        [f"{name.name}.claim", f"{name.name}.index", f"{name.name}.data-00000-of-00001"]
    )
    read = _batches(pipeline.make_dataset(shards, config, training=False, skipped=second))
    assert int(first.read.numpy()) == RECORDS and int(second.read.numpy()) == 0
    _assert_same(read, written)


def test_a_changed_shard_gets_a_new_cache_and_another_image_size_the_same(tmp_path):
    pattern = _write_shards(str(tmp_path / "data"))
    files, config = pipeline.list_shards(pattern), _config()
    before = cache_lib.cache_name("c", files, pipeline.PAIR_KEYS, config)
    assert cache_lib.cache_name("c", files, pipeline.PAIR_KEYS, _config(image_size=16)) == before
    assert cache_lib.cache_name("c", files, pipeline.TARGET_KEYS, config) != before
    folder = f"{tmp_path}{os.sep}"
    assert (
        cache_lib.cache_name(folder, files, pipeline.PAIR_KEYS, config)
        == f"{folder}input{before[1:]}"
    )
    status = os.stat(files[1])
    os.utime(files[1], ns=(status.st_atime_ns, status.st_mtime_ns + 10**9))
    assert cache_lib.cache_name("c", files, pipeline.PAIR_KEYS, config) != before
    # The cache holds the stored size; a run at another size resizes after it.
    small = _config(image_size=16)
    cached = _config(image_size=16, cache=str(tmp_path / "c"))
    _batches(pipeline.make_dataset(pattern, _config(cache=str(tmp_path / "c")), training=False))
    _assert_same(
        _batches(pipeline.make_dataset(pattern, cached, training=False)),
        _batches(pipeline.make_dataset(pattern, small, training=False)),
    )


KILLED_RECORDS = 200  # far more than the pipeline reads ahead of two batches
KILLED_WRITER = """
import os, signal
from gfrnet_tf.data import pipeline
config = pipeline.default_input_config()
config.update(image_size=32, batch_size=2, flip=False, skip_corrupt=True, cache={prefix!r})
batches = iter(pipeline.make_dataset({pattern!r}, config, training=False))
next(batches), next(batches)
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.slow
def test_a_killed_writer_leaves_no_cache_taken_as_complete(tmp_path):
    shards = _write_shards(str(tmp_path / "data"), per_shard=KILLED_RECORDS // 2)
    prefix = str(tmp_path / "cache" / "train")
    config = _config(cache=prefix, skip_corrupt=True)  # as the script's; its counter sees decodes
    name = Path(
        cache_lib.cache_name(prefix, pipeline.list_shards(shards), pipeline.PAIR_KEYS, config)
    ).name
    script = textwrap.dedent(KILLED_WRITER.format(prefix=prefix, pattern=shards))
    killed = run_checkout(sys.executable, "-c", script, timeout=300, capture_output=False)
    assert killed.returncode == -signal.SIGKILL
    leftovers = _cache_files(tmp_path / "cache")
    assert f"{name}_0.lockfile" in leftovers and f"{name}.index" not in leftovers, leftovers
    counter = pipeline.SkippedRecords()
    batches = _batches(pipeline.make_dataset(shards, config, training=False, skipped=counter))
    assert int(counter.read.numpy()) == KILLED_RECORDS  # decoded again, not read from leftovers
    _assert_same(batches, _batches(pipeline.make_dataset(shards, _config(), training=False)))
    assert _cache_files(tmp_path / "cache") == sorted(
        [f"{name}.claim", f"{name}.index", f"{name}.data-00000-of-00001"]
    )


def test_a_cache_another_live_process_writes_is_refused_in_one_line(shards, tmp_path):
    prefix = str(tmp_path / "train")
    name = cache_lib.cache_name(prefix, pipeline.list_shards(shards), pipeline.PAIR_KEYS, _config())
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys; f = open(sys.argv[1], 'w'); "
            "fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); sys.stdin.read()",
            f"{name}.claim",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(BadConfigError, match="another running process is writing") as error:
            pipeline.make_dataset(shards, _config(cache=prefix), training=False)
        assert "\n" not in str(error.value)
    finally:
        holder.communicate("")


def test_a_memory_cache_over_its_budget_is_refused_with_the_estimate(shards):
    per_record = 2 * SIZE * SIZE * 3 + 2 * 68 * 2 * 4  # two uint8 images and their points
    with pytest.raises(BadConfigError) as error:
        pipeline.make_dataset(shards, _config(cache="memory", cache_memory_gb=1e-6), training=False)
    message = str(error.value)
    assert f"{RECORDS} records x {per_record / 2**20:.3g} MB" in message and "\n" not in message
    pipeline.make_dataset(shards, _config(cache="memory", cache_memory_gb=1.0), training=False)


@pytest.mark.parametrize(
    "changes, key",
    [
        ({"cache": "gs://bucket/cache"}, "input.cache"),
        ({"data_service": "localhost:5050"}, "input.data_service"),
        ({"data_service": "grpc://localhost:5050", "cache": "memory"}, "input.cache"),
        ({"data_service": "grpc://localhost:5050", "skip_corrupt": True}, "input.skip_corrupt"),
    ],
)
def test_settings_that_cannot_work_are_refused_naming_the_key(shards, changes, key):
    with pytest.raises(BadConfigError) as error:
        pipeline.make_dataset(shards, _config(**changes), training=True)
    assert error.value.source == key and "\n" not in str(error.value)


def _numpy_degradation(image, degradation, seed):
    del degradation, seed
    return tf.ensure_shape(
        tf.numpy_function(np.copy, [image], tf.float32, stateful=False), image.shape
    )


def _wait_for_workers(dispatcher, count):
    for _ in range(600):
        if dispatcher._num_workers() >= count:
            return
        time.sleep(0.1)
    raise AssertionError("worker did not register")


def test_the_data_service_runs_every_epoch_anew_on_localhost_workers(shards):
    service = tf.data.experimental.service
    dispatcher = service.DispatchServer(service.DispatcherConfig(port=0))
    address = service_lib.address(dispatcher, "127.0.0.1")
    workers = [
        service.WorkerServer(
            service.WorkerConfig(
                dispatcher_address=address[len("grpc://") :],
                worker_address="127.0.0.1:%port%",
                port=0,
            )
        )
    ]
    try:
        config = _config(data_service=address)
        batches = _batches(pipeline.make_dataset(shards, config, training=True, repeat=True), 6)
        for inputs, targets in batches:
            assert inputs["degraded"].shape == inputs["guide"].shape == (2, SIZE, SIZE, 3)
            assert targets["landmarks"].shape == (2, 68, 2)
        epochs = [_by_target(batches[:3]), _by_target(batches[3:])]
        assert sorted(epochs[0]) == sorted(epochs[1]) and len(epochs[0]) == RECORDS
        for key in epochs[0]:  # the workers' repetition draws new degradations
            assert not np.array_equal(epochs[0][key][0], epochs[1][key][0])
        workers.append(
            service.WorkerServer(
                service.WorkerConfig(
                    dispatcher_address=address[len("grpc://") :],
                    worker_address="127.0.0.1:%port%",
                    port=0,
                )
            )
        )
        _wait_for_workers(dispatcher, 2)
        one_epoch = _by_target(_batches(pipeline.make_dataset(shards, config, training=True)))
        assert len(one_epoch) == RECORDS  # shards split over the two workers: each record once
        with pytest.raises(BadConfigError, match="calls Python") as error:
            pipeline.make_dataset(shards, config, training=True, degradation_fn=_numpy_degradation)
        assert "\n" not in str(error.value)
        # Evaluation reads here, in its fixed order, whatever the setting says.
        local = _config(data_service="grpc://127.0.0.1:1")
        _assert_same(
            _batches(pipeline.make_dataset(shards, local, training=False)),
            _batches(pipeline.make_dataset(shards, _config(), training=False)),
        )
    finally:
        for worker in workers:
            worker.stop()
        dispatcher.stop()


def test_no_dispatcher_is_one_line_naming_the_address(shards):
    port = free_port()
    with pytest.raises(BadConfigError, match="no tf.data dispatcher answers") as error:
        pipeline.make_dataset(
            shards, _config(data_service=f"grpc://127.0.0.1:{port}"), training=True
        )
    assert error.value.source == f"grpc://127.0.0.1:{port}"


def _serve(*flags):
    """The command started with `flags`, and the address it printed once listening."""
    process = subprocess.Popen(
        [sys.executable, "-m", "gfrnet_tf.apps.data_service", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=checkout_env(),
        cwd=ROOT,
    )
    line = process.stdout.readline()
    match = re.search(r"listening at grpc://[^:]+:(\d+)", line)
    assert match, line
    return process, int(match.group(1))


@pytest.mark.slow
def test_the_command_serves_a_remote_worker_and_stops_cleanly(shards):
    dispatcher, port = _serve("--port=0")
    worker = None
    try:
        socket.create_connection(("127.0.0.1", port), timeout=10).close()
        worker, _ = _serve(f"--dispatcher=grpc://127.0.0.1:{port}", "--worker_host=127.0.0.1")
        # A worker in another process runs the graph alone: synthetic pose, XLA and all.
        config = _config(data_service=f"grpc://127.0.0.1:{port}")
        config.synthetic_pose.enabled = True
        batches = _batches(pipeline.make_dataset(shards, config, training=True))
        assert len(_by_target(batches)) == RECORDS
        assert batches[0][1]["flow"].shape == (2, SIZE, SIZE, 2)
        busy = run_module("gfrnet_tf.apps.data_service", f"--port={port}", timeout=300)
        assert busy.returncode == 1
        assert busy.stderr.strip().splitlines()[-1] == (
            f"error: --port: port {port} is in use: another server answers there"
        )
    finally:
        for process in filter(None, (worker, dispatcher)):
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=60) == 0


@pytest.mark.slow
@pytest.mark.parametrize(
    "flags, line",
    [
        (
            [],
            "error: command line: give --port (run a dispatcher) or --dispatcher grpc://host:port "
            "(run a worker)",
        ),
        (
            ["--dispatcher=grpc://127.0.0.1:{port}"],
            "error: grpc://127.0.0.1:{port}: no tf.data dispatcher answers there: start one, e.g. "
            "gfrnet-data-service --port {port}",
        ),
    ],
)
def test_the_command_refuses_what_cannot_serve_in_one_line(flags, line):
    port = free_port()
    result = run_module(
        "gfrnet_tf.apps.data_service", *(f.format(port=port) for f in flags), timeout=300
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == line.format(port=port)
