"""Hostile shards (tests/hostile_records.py) through the header scan, the parser, the input
pipeline, `gfrnet-train` and `gfrnet-evaluate`: one line naming shard and record, exit
status 1, never a signal or a traceback, memory bounded whatever a header claims."""

import shutil
import sys

import numpy as np
import pytest
import tensorflow as tf

import hostile_records
from gfrnet_tf.data import (
    default_input_config,
    encode_pair,
    framing,
    make_dataset,
    validation,
    write_shard,
)
from gfrnet_tf.data.encoded import checked_header_size
from gfrnet_tf.errors import BadRecordError, first_line, strip_tf_noise
from support import run_checkout, train_command

SIZE = 32
# The error each case must give, as (record index or None for the whole shard, problem).
HEADER_CASES = {
    "huge_length": (1, f"states a length of {hostile_records.HUGE_LENGTH} bytes"),
    "bad_length_crc": (1, "length CRC mismatch"),
    "truncated_header": (1, "truncated header"),
    "truncated_payload": (1, "states a length of"),
    "empty": (None, "no records (empty shard)"),
}
PAYLOAD_CASES = {
    "random_payload": (1, "payload is not a tf.train.Example"),
    "non_example": (1, "payload is not a tf.train.Example"),
    "png_bomb": (1, "target image 12000x12000 is more than the 16777216 pixels allowed"),
    "jpeg_huge_sof": (1, "target image 65000x65000 is more than the 16777216 pixels allowed"),
}
CASES = {**HEADER_CASES, **PAYLOAD_CASES}
# A TF process with the model built is ~0.75 GB; one decoded 12000^2 image adds >= 0.43 GB.
MAX_RSS = 1 << 30


def _pair(rng):
    image = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    points = rng.uniform(4, SIZE - 4, (68, 2)).astype(np.float32)
    return image, points


def _record(rng):
    (target, points), (guide, guide_points) = _pair(rng), _pair(rng)
    return encode_pair(target, guide, points, guide_points)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """`{case: path}` for every hostile case, plus "good": a valid shard of 4 pairs."""
    folder = tmp_path_factory.mktemp("hostile")
    rng = np.random.default_rng(0)
    image, points = _pair(rng)
    written = hostile_records.write_corpus(
        folder,
        encode_pair(image, image, points, points),
        lambda target: encode_pair(target, image, points, points),
        tf.io.encode_jpeg(image).numpy(),
    )
    paths = {case: path for case, (path, _) in written.items()}
    assert {case: record for case, (_, record) in written.items()} == {
        case: record for case, (record, _) in CASES.items()
    }
    paths["good"] = folder / "good.tfrecord"
    write_shard(paths["good"], [_record(rng) for _ in range(4)])
    return paths


def _where(path, record):
    return str(path) if record is None else f"{path}: record {record}"


# ------------------------------------------------------------------ the header scan, in process


def test_masked_crc_matches_the_bytes_tf_writes_and_a_bitwise_crc(tmp_path):
    path = str(tmp_path / "tf.tfrecord")
    payloads = [b"", b"a", bytes(range(256)) * 3]
    with tf.io.TFRecordWriter(path) as writer:
        for payload in payloads:
            writer.write(payload)
    data = open(path, "rb").read()
    offset = 0
    for payload in payloads:
        length = data[offset : offset + 8]
        stored = int.from_bytes(data[offset + 8 : offset + 12], "little")
        assert framing.masked_crc32c(length) == stored == hostile_records.masked(length)
        assert framing.masked_crc32c(payload) == hostile_records.masked(payload)
        offset += 16 + len(payload)
    assert hostile_records.crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value


def test_header_scan_counts_the_records_tf_reads(tmp_path):
    path = str(tmp_path / "sizes.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for size in (0, 1, 1000, 70000, 3):
            writer.write(b"z" * size)
    assert framing.check_record_headers(path) == sum(1 for _ in tf.data.TFRecordDataset(path)) == 5


def test_a_shard_found_sound_is_scanned_again_once_it_changes(corpus, tmp_path):
    path = tmp_path / "shard.tfrecord"
    shutil.copyfile(corpus["good"], path)
    count = framing.check_record_headers(path)
    assert framing.check_record_headers(path) == count  # remembered, same answer
    shutil.copyfile(corpus["huge_length"], path)  # another size and time: not the cached shard
    with pytest.raises(BadRecordError, match="states a length of"):
        framing.check_record_headers(path)
    with pytest.raises(BadRecordError):  # a bad shard is never remembered as sound
        framing.check_record_headers(path)


@pytest.mark.parametrize("case", sorted(HEADER_CASES))
def test_each_hostile_header_is_refused_naming_shard_and_record(corpus, case):
    record, problem = HEADER_CASES[case]
    with pytest.raises(BadRecordError) as raised:
        framing.check_record_headers(corpus[case])
    assert raised.value.source == _where(corpus[case], record)
    assert problem in raised.value.problem


def test_a_folder_or_a_missing_shard_is_refused_by_name(tmp_path):
    with pytest.raises(BadRecordError, match="is a folder, not a TFRecord shard") as raised:
        framing.check_record_headers(tmp_path)
    assert raised.value.source == str(tmp_path)
    with pytest.raises(BadRecordError, match="no such shard"):
        framing.check_record_headers(tmp_path / "missing.tfrecord")


@pytest.mark.parametrize("case", sorted(CASES))
def test_validate_shard_names_shard_and_record_for_every_case(corpus, case):
    record, problem = CASES[case]
    with pytest.raises(BadRecordError) as raised:
        validation.validate_shard(corpus[case], limit=None)
    assert raised.value.source == _where(corpus[case], record)
    assert problem in raised.value.problem
    assert "{{" not in raised.value.problem and "[Op:" not in raised.value.problem


def _input_config(skip_corrupt):
    config = default_input_config()
    config.image_size, config.batch_size, config.skip_corrupt = SIZE, 2, skip_corrupt
    return config


def test_the_pipeline_scans_headers_before_tf_opens_a_shard(corpus):
    # Even with skip_corrupt: TF's reader would trust the 2^35-byte length.
    with pytest.raises(BadRecordError) as raised:
        make_dataset(
            [str(corpus["good"]), str(corpus["huge_length"])], _input_config(True), training=False
        )
    assert raised.value.source == f"{corpus['huge_length']}: record 1"


def test_a_bad_record_met_while_iterating_becomes_a_record_error(corpus):
    batches = make_dataset(str(corpus["png_bomb"]), _input_config(False), training=False)
    with pytest.raises(BadRecordError) as raised, validation.record_errors("pattern"):
        list(batches)
    assert raised.value.source == f"{corpus['png_bomb']}: record 1"
    assert raised.value.problem.startswith("target image 12000x12000 is more than")
    batches = make_dataset(str(corpus["non_example"]), _input_config(False), training=False)
    with pytest.raises(BadRecordError) as raised, validation.record_errors("pattern"):
        list(batches)
    assert (raised.value.source, raised.value.problem) == (
        "pattern",
        "a record's payload is not a tf.train.Example",
    )


# ------------------------------------------------------------------ sizes from image headers


def _size_or_error(encoded, max_pixels=None):
    @tf.function
    def size(data):
        return checked_header_size(
            data, lambda ok, problem: tf.debugging.Assert(ok, ["image:", problem]), max_pixels
        )

    try:
        return tuple(size(tf.constant(encoded)).numpy())
    except tf.errors.InvalidArgumentError as error:
        return first_line(error)


def test_header_size_equals_the_decoded_size_for_png_and_jpeg():
    image = np.zeros((5, 7, 3), np.uint8)
    for encoded in (tf.io.encode_png(image).numpy(), tf.io.encode_jpeg(image).numpy()):
        assert _size_or_error(encoded) == tf.io.decode_image(encoded).shape[:2] == (5, 7)
        assert _size_or_error(encoded, max_pixels=35) == (5, 7)


def test_header_size_refuses_other_formats_and_too_many_pixels():
    for other in (
        b"GIF89a" + bytes(40),
        b"",
        b"\x89PNG\r\n\x1a\n",
        b"\x89PNG\r\n\x1a\n" + bytes(16),
    ):
        assert "is not a JPEG or PNG image" in _size_or_error(other)
    bomb = _size_or_error(hostile_records.png_bomb(), max_pixels=4096 * 4096)
    assert "12000x12000 is more than the 16777216 pixels allowed" in bomb
    png = tf.io.encode_png(np.zeros((8, 8, 3), np.uint8)).numpy()
    no_width = png[:16] + bytes(4) + png[20:]  # IHDR width 0 (its chunk CRC is not read)
    assert "states a width or height outside 1 .. 2^31 - 1" in _size_or_error(no_width, 64)
    too_wide = png[:16] + b"\x80\x00\x00\x00" + png[20:]  # 2^31: negative as int32
    assert "states a width or height outside 1 .. 2^31 - 1" in _size_or_error(too_wide, 64)


# ------------------------------------------------------------------ TF's noise in messages


def test_tf_noise_is_stripped_from_real_tf_errors(tmp_path):
    with pytest.raises(tf.errors.OpError) as raised:
        list(tf.data.TFRecordDataset(str(tmp_path)))  # a folder
    assert "{{function_node" in str(raised.value) and "[Op:IteratorGetNext]" in str(raised.value)
    assert first_line(raised.value).endswith("; Is a directory")
    assert "{{" not in first_line(raised.value) and "[Op:" not in first_line(raised.value)

    with pytest.raises(tf.errors.OpError) as raised:
        tf.reshape(tf.zeros([3]), [4])
    assert "[Op:Reshape]" in str(raised.value)
    assert first_line(raised.value) == (
        "Input to reshape is a tensor with 3 values, but the requested shape has 4"
    )

    @tf.function
    def fails(x):
        tf.debugging.Assert(x > 0, ["x must be positive"])
        return x

    with pytest.raises(tf.errors.OpError) as raised:
        fails(tf.constant(-1))
    assert "[[{{node" in str(raised.value)
    assert strip_tf_noise(str(raised.value)).splitlines() == [
        "assertion failed: [x must be positive]"
    ]
    assert first_line(raised.value) == "assertion failed: [x must be positive]"


# ------------------------------------------------------------------ the commands, end to end

# The command is started from a small launcher process: a child's peak RSS counts the pages
# it shared with the process that forked it, and a pytest worker holding models is ~1 GB.
_LAUNCHER = """
import os, signal, sys
pid = os.fork()
if pid == 0:
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(usage.ru_maxrss)
code = os.waitstatus_to_exitcode(status)
if code < 0:
    os.kill(os.getpid(), -code)
sys.exit(code)
"""


def _run(command):
    """Runs `command`; returns (exit status, stderr, peak RSS of that command in bytes)."""
    done = run_checkout(sys.executable, "-c", _LAUNCHER, *command, timeout=None)
    rss = int(done.stdout.split()[-1]) * 1024 if done.stdout.strip() else 0
    return done.returncode, done.stderr, rss


def _assert_one_line(result, where, problem):
    status, stderr, rss = result
    assert status == 1, stderr[-2000:]  # never a negative status (a signal)
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"error: {where}: ") and problem in errors[0], errors[0]
    assert "Traceback" not in stderr and "{{function_node" not in stderr
    assert rss < MAX_RSS, f"peak RSS {rss / 2**20:.0f} MiB"


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_train_refuses_each_hostile_shard_in_one_line(corpus, tmp_path, case):
    """Header cases as training data; payload cases as validation data (whose records are
    all parsed at start-up) so that each run stops before the model is built."""
    if case in HEADER_CASES:
        data = [f"--data={corpus[case]}"]
    else:
        data = [f"--data={corpus['good']}", f"--val_data={corpus[case]}"]
    record, problem = CASES[case]
    _assert_one_line(
        _run(train_command(tmp_path / "run", *data)), _where(corpus[case], record), problem
    )


@pytest.mark.slow
def test_train_names_a_bad_record_met_after_the_start_up_check(corpus, tmp_path):
    # Only record 0 of a training shard is parsed at start-up; the bomb is record 1.
    result = _run(train_command(tmp_path / "run", f"--data={corpus['png_bomb']}"))
    _assert_one_line(result, f"{corpus['png_bomb']}: record 1", PAYLOAD_CASES["png_bomb"][1])


def _evaluate(model, folder, *shards):
    """gfrnet-evaluate on a glob matching copies of `shards` (in `folder`, sorted as given)."""
    (folder / "data").mkdir()
    for number, shard in enumerate(shards):
        shutil.copyfile(shard, folder / "data" / f"{number}-{shard.name}")
    return [
        sys.executable,
        "-m",
        "gfrnet_tf.apps.evaluate",
        f"--model={model}",
        f"--data={folder / 'data'}/*.tfrecord",
        f"--output={folder / 'out'}",
        f"--image_size={SIZE}",
        "--batch_size=2",
        "--synthetic_pose",
    ]


@pytest.mark.slow
@pytest.mark.parametrize("case", ["huge_length", "truncated_payload", "empty"])
def test_evaluate_refuses_a_hostile_header_in_one_line(corpus, tiny_model, tmp_path, case):
    record, problem = HEADER_CASES[case]
    result = _run(_evaluate(tiny_model[1], tmp_path, corpus["good"], corpus[case]))
    _assert_one_line(result, _where(tmp_path / "data" / f"1-{case}.tfrecord", record), problem)


@pytest.mark.slow
def test_evaluate_skips_and_counts_bad_payloads_and_bombs(corpus, tiny_model, tmp_path):
    import json

    shards = [corpus["good"], *(corpus[case] for case in sorted(PAYLOAD_CASES))]
    result = _run(_evaluate(tiny_model[1], tmp_path, *shards))
    _assert_one_line(
        result, f"{tmp_path / 'data'}/*.tfrecord", f"{len(PAYLOAD_CASES)} corrupt record(s) skipped"
    )
    report = json.loads((tmp_path / "out" / "results.json").read_text())
    assert report["skipped_records"] == len(PAYLOAD_CASES)
    assert [row["model"] for row in report["rows"]] == ["degraded input", "tiny"]
