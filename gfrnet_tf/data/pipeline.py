"""The training / evaluation input: TFRecord shards -> batched `(inputs, targets)`.

    shards -> [input_context shard] -> interleave (records keep (shard, index))
      -> [shuffle] -> decode + check (uint8) [-> skip corrupt, counted]
      [-> cache -> shuffle] [-> guides of other people (Ours(R))] -> per-element seed
      -> one per-sample map: to float, resize -> [synthetic-pose guide] -> [flip]
         -> degrade (Eq. 4)
      -> batch [-> repeat] [-> tf.data service] -> prefetch

Elements are `(inputs, targets)` as `train_step` reads them (docs/ARCHITECTURE.md):
`inputs = {"degraded", "guide"}` float32 `[B, H, W, 3]` in `[-1, 1]` (the guide is never
degraded); `targets = {"target" [-1, 1], "landmarks" [B, 68, 2] px, "guide_landmarks"
[B, 68, 2] px, "degradation": {"blur", "scale", "noise", "jpeg_quality"} [B]}` plus
`"flow" [B, H, W, 2]` (normalised) in synthetic-pose mode only, and `"identity"`,
`"guide_identity"` `[B]` int64 (`other_identity.identity_code`) with guides of other people.

Randomness is stateless and comes from one `[2]` seed per element. Training draws it from
`Dataset.random(config.seed, rerandomize_each_iteration=True)`: every epoch differs, a run
is reproducible. Evaluation (`training=False`, or degradation mode "seeded"/"fixed")
derives it from the record's identity -- shard file name and index within the shard --
so the same record gets the same degradation and guide every epoch, whatever the shard
order or the number of readers.

`input.cache` (`gfrnet_tf.data.cache`) keeps the decoded records, before anything random;
`input.data_service` (`gfrnet_tf.data.service`) runs the training pipeline on remote
tf.data workers. `tf.data.Dataset.snapshot` is not offered: it would freeze the random
per-epoch output, and placed after the decode it only repeats `cache` with a key (the
graph's fingerprint) that does not see a shard rewritten under the same name.
"""

from __future__ import annotations

import os

import ml_collections
import tensorflow as tf

from gfrnet_tf.data import cache as cache_lib
from gfrnet_tf.data import degrade as degrade_lib
from gfrnet_tf.data import other_identity, synthetic_pose
from gfrnet_tf.data import service as service_lib
from gfrnet_tf.data.framing import check_record_headers
from gfrnet_tf.data.images import to_model_range
from gfrnet_tf.data.landmarks import IMAGE_POINTS, flip_sample
from gfrnet_tf.data.parsing import decode_pair, to_float_pair
from gfrnet_tf.errors import BadConfigError
from gfrnet_tf.io.images import MAX_IMAGE_SIZE

DEGRADATION_MODES = ("random", "seeded", "fixed")
PAIR_KEYS = ("target", "guide", "landmarks", "guide_landmarks")
TARGET_KEYS = ("target", "landmarks")


def default_input_config():
    """The `config.input` settings every config starts from (paper values where it has them)."""
    config = ml_collections.ConfigDict()
    config.image_size = 256
    config.batch_size = 8  # global; each replica gets batch_size / replicas
    config.shuffle_buffer = 1024
    config.cycle_length = 4  # shards read at once
    config.flip = True
    config.seed = 0
    config.deterministic = False  # True: fixed element order (reproducible, a bit slower)
    config.skip_corrupt = False  # True: drop records that fail to parse, count them
    config.cache = ""  # "memory" or a local path prefix: decoded records kept across epochs
    config.cache_memory_gb = 0.0  # refuse "memory" above this; 0: half the machine's memory
    config.data_service = ""  # "grpc://host:port" of a tf.data dispatcher: remote workers
    config.degradation = ml_collections.ConfigDict(degrade_lib.paper_parameter_sets())
    config.degradation.mode = "random"  # "random" | "seeded" | "fixed"
    config.degradation.fixed = ml_collections.ConfigDict(
        {"blur": 0.0, "scale": 4.0, "noise": 0.0, "jpeg_quality": 0}
    )
    config.synthetic_pose = ml_collections.ConfigDict(synthetic_pose.default_pose_settings())
    config.synthetic_pose.enabled = False
    return config


def check_input_config(config):
    """Raises `BadConfigError` naming the key for settings that cannot work."""
    if not 8 <= config.image_size <= MAX_IMAGE_SIZE:
        raise BadConfigError(
            "input.image_size", f"must be 8 .. {MAX_IMAGE_SIZE}, got {config.image_size}"
        )
    if config.batch_size < 1:
        raise BadConfigError("input.batch_size", f"must be >= 1, got {config.batch_size}")
    if config.degradation.mode not in DEGRADATION_MODES:
        raise BadConfigError(
            "input.degradation.mode", f"one of {DEGRADATION_MODES}, got {config.degradation.mode!r}"
        )
    degrade_lib.check_parameter_sets(config.degradation, config.image_size)
    fixed = {name: (config.degradation.fixed[name],) for name in degrade_lib.PARAMETERS}
    degrade_lib.check_parameter_sets(fixed, config.image_size, "input.degradation.fixed")
    if config.synthetic_pose.enabled:
        synthetic_pose.check_pose_settings(config.synthetic_pose)
    cache, service = _cache_setting(config), _service_setting(config)
    cache_lib.check_cache_setting(cache)
    if service:
        service_lib.parse_address(service)
        if cache:
            raise BadConfigError(
                "input.cache",
                "does not combine with input.data_service: each "
                "worker would replay the shards of its first epoch",
            )
        if config.skip_corrupt:
            raise BadConfigError(
                "input.skip_corrupt",
                "counts in this process, which input.data_service workers cannot update",
            )


def _cache_setting(config) -> str:
    return config.get("cache", "")  # configs saved before the key existed: off


def _service_setting(config) -> str:
    return config.get("data_service", "")


def list_shards(file_patterns):
    """Sorted union of the glob patterns; `BadConfigError` if a pattern matches nothing."""
    if isinstance(file_patterns, str):
        file_patterns = [file_patterns]
    files = set()
    for pattern in file_patterns:
        matches = tf.io.gfile.glob(pattern)
        if not matches:
            raise BadConfigError(pattern, "matches no TFRecord shards")
        files.update(matches)
    return sorted(files)


class SkippedRecords:
    """Counts records dropped by `skip_corrupt`: `skipped = read - parsed`.

    Exact once the dataset is exhausted; while iterating, records being parsed at that
    moment also count. Pass one to `make_dataset(..., skipped=...)` and read `.skipped`.
    """

    def __init__(self):
        # Plain variables: create this outside any `strategy.scope()`; the dataset runs
        # on the host and only its reader threads touch them.
        self.read = tf.Variable(0, dtype=tf.int64, trainable=False, name="records_read")
        self.parsed = tf.Variable(0, dtype=tf.int64, trainable=False, name="records_parsed")

    @property
    def skipped(self) -> int:
        return int(self.read.numpy() - self.parsed.numpy())

    def counting(self, parse):
        """Wraps a parse function: counts every call, and every call that got through."""

        def counted(*record):
            with tf.control_dependencies([self.read.assign_add(1)]):
                outputs = parse(*record)
            with tf.control_dependencies(tf.nest.flatten(outputs)):
                done = self.parsed.assign_add(1)
            with tf.control_dependencies([done]):
                return tf.nest.map_structure(tf.identity, outputs)

        return counted


def _graph_fn(function):
    """Marks a map function as plain graph code (explicit tf.cond / tf.while_loop only).

    AutoGraph would otherwise re-parse every function it reaches (the resampler, the
    degradation): measured 3.0 s -> 0.75 s to trace the synthetic-pose map.
    """
    return tf.autograph.experimental.do_not_convert(function)


def _shard_hash(shard):
    name = tf.strings.regex_replace(shard, r"^.*[/\\]", "")
    return tf.strings.to_hash_bucket_fast(name, 2**31 - 1)


def _record_seed(config, shard, index):
    """A seed that depends only on the record (shard file name, index) and `config.seed`."""
    base = tf.stack([tf.constant(config.seed, tf.int64), _shard_hash(shard)])
    return tf.random.experimental.stateless_fold_in(base, index)


def _with_record(seed, shard, index):
    """`seed` made specific to the record: tf.data service workers run one graph, so their
    random streams are equal; folding in the record sets them apart."""
    seed = tf.random.experimental.stateless_fold_in(seed, _shard_hash(shard))
    return tf.random.experimental.stateless_fold_in(seed, index)


def _random_seeds(config, input_context):
    """A stream of `[2]` seeds, new each epoch, the same for every run with the same seed.

    Each input pipeline (worker) folds in its id, so replicas do not draw in lockstep.
    """
    seeds = tf.data.Dataset.random(seed=config.seed, rerandomize_each_iteration=True).batch(2)
    if input_context is None:
        return seeds
    reader = input_context.input_pipeline_id
    return seeds.map(lambda seed: tf.random.experimental.stateless_fold_in(seed, reader))


def _example_fn(config, training, degradation_fn):
    """The per-sample map: sample dict + seed -> `(inputs, targets)`."""
    mode = config.degradation.mode
    sets = config.degradation.to_dict()

    def example(sample, seed):
        pose_seed, flip_seed, draw_seed, noise_seed = tf.unstack(
            tf.random.experimental.stateless_split(seed, 4)
        )
        sample = to_float_pair(sample, config.image_size)
        target = sample["target"]
        targets = {"landmarks": sample["landmarks"]}
        if config.synthetic_pose.enabled:
            guide, targets["guide_landmarks"], targets["flow"] = synthetic_pose.synthesize_guide(
                target, targets["landmarks"], pose_seed, config.synthetic_pose
            )
        else:
            guide, targets["guide_landmarks"] = sample["guide"], sample["guide_landmarks"]
        pair = dict(targets, target=target, guide=guide)
        if training and config.flip:
            heads = tf.random.stateless_uniform([], flip_seed) < 0.5
            pair = tf.cond(heads, lambda: flip_sample(pair), lambda: pair)
        if mode == "fixed":
            degradation = degrade_lib.fixed_degradation(config.degradation.fixed)
        else:
            degradation = degrade_lib.sample_degradation(draw_seed, sets)
        degraded = degradation_fn(pair["target"], degradation, noise_seed)
        inputs = {"degraded": to_model_range(degraded), "guide": to_model_range(pair["guide"])}
        targets = {key: pair[key] for key in targets}
        targets.update(target=to_model_range(pair["target"]), degradation=degradation)
        if "guide_identity" in sample:  # Ours(R): whose guide it is, for checks
            for key in ("identity", "guide_identity"):
                targets[key] = other_identity.identity_code(sample[key])
        return inputs, targets

    return example


def _finish(
    records,
    config,
    training,
    input_context,
    degradation_fn,
    drop_remainder,
    repeat=False,
    service="",
):
    """`(shard, index, sample)` elements -> seeded, augmented, degraded, batched, [repeated,
    run by the tf.data service at `service`,] prefetched."""
    if training and config.degradation.mode == "random":
        per_record = bool(service)
        seeded = tf.data.Dataset.zip(records, _random_seeds(config, input_context)).map(
            lambda record, seed: (
                record[2],
                _with_record(seed, record[0], record[1]) if per_record else seed,
            )
        )
    else:
        seeded = records.map(
            lambda shard, index, sample: (sample, _record_seed(config, shard, index))
        )
    examples = seeded.map(
        _graph_fn(_example_fn(config, training, degradation_fn)),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    if drop_remainder is None:
        drop_remainder = training
    batch_size = config.batch_size
    if input_context is not None:
        batch_size = input_context.get_per_replica_batch_size(batch_size)
    options = tf.data.Options()
    # Evaluation always keeps the order, so metrics and image dumps line up across runs.
    options.deterministic = config.deterministic or not training
    # Parallelism comes from mapping many samples at once; multi-threaded ops inside each
    # sample (the degradation's GEMMs) would only oversubscribe the cores.
    options.threading.max_intra_op_parallelism = 1
    batches = examples.batch(batch_size, drop_remainder=drop_remainder).with_options(options)
    if repeat:
        batches = batches.repeat()
    if service:  # after the repeat: each worker's epochs then draw anew (`service_lib`)
        return service_lib.distribute(batches, service)
    return batches.prefetch(tf.data.AUTOTUNE)


def _read_shards(files, config, input_context, shuffle_shards, shuffle_records):
    """Shards -> `(shard, index, serialized)` records: per-reader split, shuffled as asked.

    Unshuffled records come in a fixed order (what a cache stores is the same every run).
    """
    shards = tf.data.Dataset.from_tensor_slices(files)
    split_records = False
    if input_context is not None and input_context.num_input_pipelines > 1:
        if len(files) >= input_context.num_input_pipelines:
            shards = shards.shard(
                input_context.num_input_pipelines, input_context.input_pipeline_id
            )
        else:  # fewer shards than readers: every reader reads all, keeps its share
            split_records = True
    if shuffle_shards:
        shards = shards.shuffle(len(files), seed=config.seed)

    def read(shard):
        indexed = tf.data.TFRecordDataset(shard).enumerate()
        return indexed.map(lambda index, serialized: (shard, index, serialized))

    records = shards.interleave(
        read,
        cycle_length=min(config.cycle_length, len(files)),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=None if shuffle_records else True,
    )
    if split_records:
        records = records.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    if shuffle_records:
        records = records.shuffle(config.shuffle_buffer, seed=config.seed)
    return records


def make_dataset(
    file_patterns,
    config,
    training,
    input_context=None,
    skipped=None,
    degradation_fn=degrade_lib.degrade,
    drop_remainder=None,
    repeat=False,
    other_identity_guides=False,
):
    """Batched `(inputs, targets)` from TFRecord shards of the `records` schema.

    `config` is `config.input` (see `default_input_config`); `input_context` comes from
    `strategy.distribute_datasets_from_function`. `training=False`: no shuffle, no flip,
    record-seeded degradation. With `config.skip_corrupt` a bad record is logged and
    dropped (counted in `skipped`, a `SkippedRecords`); otherwise it stops iteration with
    an error naming the shard and record (call `validation.validate_shard` at start-up for a
    `BadRecordError` instead). Every shard's record headers are checked first
    (`framing.check_record_headers`): a hostile or truncated one is a `BadRecordError`
    naming shard and record, whatever `skip_corrupt` says. `degradation_fn(image,
    degradation, seed)` replaces Eq. 4 (the benchmark uses it to time an OpenCV version).

    `drop_remainder=None` means `training`: training batches are all full (every replica
    needs one per step), an evaluation keeps its last, partial batch so that every record
    is measured. A repeated validation set counted in whole batches passes True.
    `repeat=True`: endless, every pass with new randomness.

    `other_identity_guides=True` (Ours(R), `gfrnet_tf.data.other_identity`): every target
    gets the guide of an earlier record of another person instead of its own; the records
    must name at least two people, and synthetic pose (a guide made from the target
    itself) is refused.

    `config.cache` keeps the decoded records across passes (`gfrnet_tf.data.cache`): the
    record shuffle then follows the cache, and the shard order is fixed. A training
    dataset with `config.data_service` runs on that dispatcher's workers
    (`gfrnet_tf.data.service`); an evaluation always runs here, in its fixed order.
    """
    check_input_config(config)
    if other_identity_guides and config.synthetic_pose.enabled:
        raise BadConfigError(
            "input.synthetic_pose.enabled",
            "Ours(R) takes the guide of another person from the records; a synthetic-pose "
            "guide is made from the target itself",
        )
    files = list_shards(file_patterns)
    # Before TF's reader can trust a hostile record length; the counts size a memory cache.
    counts = [check_record_headers(path) for path in files]
    first_people = other_identity.first_two_people(files) if other_identity_guides else None
    cache = _cache_setting(config)
    service = _service_setting(config) if training else ""
    if service:  # workers open the shards themselves, from another working directory
        files = [path if "://" in path else os.path.abspath(path) for path in files]
    shuffle = training and not cache
    # A shuffled source is not split over service workers: each would read every shard.
    records = _read_shards(
        files,
        config,
        input_context,
        shuffle_shards=shuffle and not service,
        shuffle_records=shuffle,
    )

    # A synthetic-pose guide replaces the stored one: leaving it out of the parse output
    # lets tf.data prune its decoding (one PNG decode, ~10% of a sample's CPU time).
    keys = TARGET_KEYS if config.synthetic_pose.enabled else PAIR_KEYS
    if other_identity_guides:
        keys = other_identity.SAMPLE_KEYS

    def parse(shard, index, serialized):
        return shard, index, decode_pair(serialized, shard, index, keys)

    if config.skip_corrupt:
        parse = (skipped or SkippedRecords()).counting(parse)
    parsed = records.map(_graph_fn(parse), num_parallel_calls=tf.data.AUTOTUNE)
    if config.skip_corrupt:
        parsed = parsed.ignore_errors(log_warning=True)
    if cache:
        parsed = cache_lib.cached(parsed, cache, config, files, counts, keys, input_context)
        if training:
            parsed = parsed.shuffle(config.shuffle_buffer, seed=config.seed)
    if other_identity_guides:
        parsed = other_identity.with_other_identity_guides(parsed, *first_people)
    return _finish(
        parsed, config, training, input_context, degradation_fn, drop_remainder, repeat, service
    )


def array_dataset(images, landmarks, config, training, guides=None, guide_landmarks=None):
    """The same pipeline from in-memory uint8 images `[N, H, W, 3]` and `[N, 68, 2]` points.

    For tests and the demo. Without `guides`, synthetic-pose mode must be on (a guide is
    never silently replaced by the target itself).
    """
    check_input_config(config)
    if guides is None and not config.synthetic_pose.enabled:
        raise BadConfigError(
            "input.synthetic_pose.enabled", "no guides given: enable synthetic pose"
        )
    if guides is None:  # placeholders only: synthetic pose replaces every guide
        guides, guide_landmarks = images, landmarks

    def load(index, element):
        sample = dict(element)
        for _, points_key in IMAGE_POINTS:
            sample[points_key] = tf.cast(element[points_key], tf.float32)
        return tf.constant("<memory>"), index, sample

    arrays = {
        "target": images,
        "guide": guides,
        "landmarks": landmarks,
        "guide_landmarks": guide_landmarks,
    }
    records = tf.data.Dataset.from_tensor_slices(arrays).enumerate()
    if training:
        records = records.shuffle(config.shuffle_buffer, seed=config.seed)
    records = records.map(_graph_fn(load), num_parallel_calls=tf.data.AUTOTUNE)
    return _finish(records, config, training, None, degrade_lib.degrade, drop_remainder=None)
