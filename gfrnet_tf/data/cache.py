"""`input.cache`: keep the decoded records (the deterministic, expensive part) across epochs.

`tf.data.Dataset.cache` sits right after the PNG/JPEG decode, on uint8 images at the size
the records store, before anything random: shuffling, synthetic-pose guides, flips and the
Eq. 4 degradation still run every epoch, so every epoch draws new degradations; the
images themselves are bit-identical to an uncached pipeline's. The cache is complete only
after one full pass (an iterator dropped earlier discards what it held).

- `"memory"`: held by this process. Refused when the records of this input pipeline
  (exact count from the shard headers) times the decoded bytes of the first record exceed
  `input.cache_memory_gb` (0: half the machine's memory): an estimate one line can state,
  where an over-full cache would end in the kernel's OOM kill.
- a local path prefix: files `<prefix>-<key>.index` / `.data-*` (TF's tensor bundle). The
  key hashes what the cached elements depend on: every shard's path, size and mtime, the
  decoded keys, `skip_corrupt`, `cycle_length`, the input pipeline and `CACHE_FORMAT`; a
  changed shard or another dataset gets new files, never stale ones. TF writes to
  `<name>_0.*` beside a `<name>_0.lockfile` and merges them into `<name>.index` only at the
  end of the first pass, so a cache counts as complete only when `<name>.index` exists. A
  killed run leaves the lockfile, which TF takes for a concurrent writer and refuses; this
  process therefore holds an advisory lock (`<name>.claim`, released by the kernel when the
  process dies): whoever holds it removes a dead writer's leftovers and writes, a second
  live process is refused in one line. A complete cache is read through once when a run
  starts (a pass over local files, no decoding): a damaged one (a truncated file, a
  flipped bit: TF's checksums) is removed and rebuilt by this run, with one warning naming
  it, instead of failing every later run with TF's traceback.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import json
import math
import os

import tensorflow as tf
from absl import logging

from gfrnet_tf.data.parsing import decode_pair
from gfrnet_tf.data.records import SCHEMA_VERSION
from gfrnet_tf.data.validation import readable_problem
from gfrnet_tf.errors import BadConfigError, BadRecordError, first_line
from gfrnet_tf.io.paths import printable

MEMORY = "memory"
CACHE_FORMAT = 1  # what `decode_pair` yields (uint8 at the stored size); bump if it changes
_CLAIMS: dict[str, int] = {}  # cache name -> file descriptor holding its `.claim` lock


def check_cache_setting(cache):
    """Raises `BadConfigError` for an `input.cache` that cannot work ("" means off)."""
    if not isinstance(cache, str):
        raise BadConfigError("input.cache", f'"", "memory" or a path prefix, got {cache!r}')
    if "://" in cache:
        raise BadConfigError(
            "input.cache",
            f"{cache}: a file cache must be a local path "
            "(decoded images are several times the shards' size)",
        )


def cached(records, cache, config, files, counts, keys, input_context=None):
    """`records` (`(shard, index, sample)` from `decode_pair`) through `Dataset.cache`.

    `counts` are the shards' record counts (`check_record_headers`), `keys` the decoded
    sample keys. Raises `BadConfigError` for a memory cache over budget, a file cache that
    cannot be created or one another live process is writing.
    """
    if cache == MEMORY:
        _check_memory_budget(files, counts, keys, config, input_context)
        return records.cache()
    name = cache_name(cache, files, keys, config, input_context)
    if tf.io.gfile.exists(f"{name}.index"):
        _remove_if_damaged(records, name)
    if not tf.io.gfile.exists(f"{name}.index"):
        _claim(name)
    return records.cache(name)


def cache_name(prefix, files, keys, config, input_context=None) -> str:
    """`<prefix>-<key>`: the file cache of these shards and settings (see the module doc);
    a folder as prefix (an existing one, or ending in "/") holds `input-<key>` files."""
    if prefix.endswith(os.sep) or os.path.isdir(prefix):
        prefix = os.path.join(prefix, "input")
    shards = []
    for path in files:
        status = tf.io.gfile.stat(path)
        shards.append([os.path.abspath(path), status.length, status.mtime_nsec])
    pipeline = (0, 1)
    if input_context is not None:
        pipeline = (input_context.input_pipeline_id, input_context.num_input_pipelines)
    identity = {
        "format": CACHE_FORMAT,
        "schema": SCHEMA_VERSION,
        "shards": shards,
        "keys": sorted(keys),
        "skip_corrupt": bool(config.skip_corrupt),
        "cycle_length": config.cycle_length,
        "pipeline": pipeline,
    }
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    return f"{prefix}-{key}"


def _remove_if_damaged(records, name):
    """Reads the complete cache `name` once (`records.cache(name)` reads only its files); if
    TF finds it damaged, removes its files so that this run writes it anew, and says so."""
    try:
        for _ in records.cache(name):
            pass
        return
    except (tf.errors.DataLossError, tf.errors.InternalError, tf.errors.OutOfRangeError) as error:
        problem = first_line(error)
    damaged = glob.glob(f"{glob.escape(name)}.index") + glob.glob(f"{glob.escape(name)}.data-*")
    try:
        for path in damaged:
            os.remove(path)
    except OSError as error:
        raise BadConfigError(
            printable(name),
            f"the input cache is damaged ({problem}) and cannot be removed "
            f"({error.strerror}): delete {printable(name)}.* and run again",
        ) from None
    logging.warning(
        "%s: the input cache was damaged (%s); removed, this run writes it anew",
        printable(name),
        problem,
    )


def _claim(name):
    """Takes `<name>.claim` for this process and removes a dead writer's leftovers."""
    if name in _CLAIMS:
        return
    folder = os.path.dirname(os.path.abspath(name))
    try:
        os.makedirs(folder, exist_ok=True)
        descriptor = os.open(f"{name}.claim", os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as error:
        raise BadConfigError(
            printable(name), f"cannot create the input cache: {error.strerror or error}"
        ) from None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise BadConfigError(
            printable(name),
            "another running process is writing this input "
            "cache: wait for its first pass to end, or set "
            "another input.cache",
        ) from None
    _CLAIMS[name] = descriptor
    for leftover in glob.glob(f"{glob.escape(name)}_*"):  # TF's `<name>_<shard>.*` files
        os.remove(leftover)


def _check_memory_budget(files, counts, keys, config, input_context):
    pipelines = input_context.num_input_pipelines if input_context is not None else 1
    records = math.ceil(sum(counts) / pipelines)
    per_record = _decoded_bytes(files[0], keys)
    budget = config.cache_memory_gb or _physical_memory() / 2 / 2**30
    total = records * per_record / 2**30
    if total > budget:
        raise BadConfigError(
            "input.cache",
            f'"memory" would hold {records} records x {per_record / 2**20:.3g} MB '
            f"decoded = {total:.1f} GB, over input.cache_memory_gb = {budget:.1f}: "
            "cache to a local path prefix instead, or raise the budget",
        )


def _decoded_bytes(path, keys) -> int:
    """Bytes of the first record of `path` as `decode_pair` keeps it."""
    try:
        serialized = next(iter(tf.data.TFRecordDataset(path).take(1)))
        sample = decode_pair(serialized, path, 0, keys)
    except tf.errors.OpError as error:
        raise BadRecordError(
            f"{printable(path)}: record 0", readable_problem(error.message)
        ) from None
    return sum(int(tf.size(value)) * value.dtype.size for value in sample.values())


def _physical_memory() -> int:
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
