"""The `gfrnet-prepare` Beam pipeline: photos grouped by identity -> a dataset folder.

Input: `ROOT/<identity>/<photo>` (the VGGFace2 / CASIA-WebFace layout).

    list identities (driver) -> list photos, in batches per identity -> reshuffle
      -> read, decode, detect, crop, landmarks, one photo at a time
      -> per identity: keep guide/target candidates (a combiner, so only ~6 crops per
         identity are shuffled) -> guide + targets, split -> group by shard -> write shard
      -> one last step: rejected.tsv, stale shards removed, manifest.json

Outputs in DIR: `{train,val,test}-NNNNN-of-MMMMM.tfrecord` (the `gfrnet_tf.data.records`
schema), `rejected.tsv` (photo, reason, problem; sorted), with `export_guides` each
identity's guide in `guides/<split>/`, and `manifest.json` (the `PreparedDataset` handle:
splits, their shards and exact record counts, image size, synthetic pose, counts), written
last, atomically, so a manifest means the run finished.

Runner-portable by construction, so DirectRunner, Dask, Flink, Spark and Dataflow give the
same bytes: only Create, ParDo, GroupByKey, Flatten, Reshuffle and a CombineFn; DoFns are
module-level classes holding their settings; no tagged outputs, no side inputs, no output
from `finish_bundle`, no Beam metrics (the Dask runner drops or lacks all four). Every step
emits `(kind, value)` items instead, and the counts travel as data into the final step,
which is downstream of everything else.

Byte-identical re-runs whatever the batching, worker count or runner: each photo is
detected alone (`photo.prepare_photo`), every choice per identity sorts on content
(`identity`), an identity's pairs go to the shard its name hashes to, sorted by photo key,
and rejected rows are sorted. Shards are written by our own step, not `WriteToTFRecord`,
whose record placement depends on bundling and which leaves `beam-temp-*` folders behind
on failure.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import json
import logging
import math
import re
import time

from gfrnet_tf.errors import BadConfigError, GFRNetError, first_line, optional_dependency
from gfrnet_tf.io.paths import safe_name
from gfrnet_tf.pipelines import listing
from gfrnet_tf.pipelines.identity import (
    SPLITS,
    PairOptions,
    keep_candidates,
    make_pairs,
    shard_of,
    split_of,
)
from gfrnet_tf.pipelines.photo import FaceOptions, prepare_photo

# Unreadable inputs are failures (exit status 1); faces filtered out are expected.
FAILURE_REASONS = ("bad_image", "no_landmarks", "unlistable")
MAX_PHOTO_BYTES = 200 * 2**20
SHARD_PATTERN = re.compile(r"(train|val|test)-\d{5}-of-\d{5}\.tfrecord")
_SUMMARY_KEY = "summary"


@dataclasses.dataclass(frozen=True)
class PrepareSettings:
    """Everything the workers need; pickled into each DoFn.

    `photos_per_batch` only groups photos into Beam elements (fewer, larger elements to
    shuffle); it cannot change any output, so it is not recorded in the manifest.
    """

    input: str
    output: str
    landmarks: str = "dlib"
    num_shards: int = 16
    export_guides: bool = False
    photos_per_batch: int = 16
    max_photo_bytes: int = MAX_PHOTO_BYTES
    faces: FaceOptions = FaceOptions()
    pairs: PairOptions = PairOptions()

    def shards_in(self, split: str) -> int:
        """train gets `num_shards`; val and test proportionally fewer, at least one."""
        train = 1.0 - self.pairs.val_fraction - self.pairs.test_fraction
        fraction = {
            "train": train,
            "val": self.pairs.val_fraction,
            "test": self.pairs.test_fraction,
        }[split]
        return max(1, math.ceil(self.num_shards * fraction / max(train, 1e-9)))

    def recorded(self) -> dict:
        """The settings that define the dataset (not where it is or how it was batched)."""
        recorded = dataclasses.asdict(self)
        for execution_only in ("output", "photos_per_batch"):
            del recorded[execution_only]
        return recorded


@functools.cache
def landmark_source(spec: str):
    """`dlib` -> dlib's predictor; anything else is a `.pts` folder or a CSV file (one per
    process: portable runners may call `DoFn.setup` once per bundle)."""
    from gfrnet_tf.faces import DlibLandmarks, FileLandmarks

    return DlibLandmarks() if spec == "dlib" else FileLandmarks(spec)


def tsv_field(text: str) -> str:
    """Tabs and line breaks (possible in scraped file names) become spaces."""
    return re.sub(r"[\t\r\n]", " ", text)


def rejected_row(key: str, reason: str, problem: str) -> tuple:
    return ("rejected", "\t".join(tsv_field(field) for field in (key, reason, problem)))


def _count(name: str, value: int = 1) -> tuple:
    return ("count", (name, value))


def select(item, kind):
    """The value of every `(kind, value)` item of that kind."""
    if item[0] == kind:
        yield item[1]


def keep(item, kinds):
    """The `(kind, value)` items of the given kinds, unchanged."""
    if item[0] in kinds:
        yield item


class ListPhotos:
    """An identity folder -> batches of `(identity, key, path)`, listed in name order."""

    def __init__(self, settings: PrepareSettings):
        self.settings = settings

    def __call__(self, identity_folder):
        identity, folder = identity_folder
        try:
            _, names = listing.list_folder(folder)
        except (OSError, UnicodeDecodeError) as error:
            yield rejected_row(
                f"{identity}/", "unlistable", f"cannot list the folder ({listing.reason(error)})"
            )
            return
        if not names:
            yield _count("rejected_empty_identity")
        photos = [
            (identity, f"{identity}/{listing.text_of(name)}", listing.join(folder, name))
            for name in names
        ]
        size = self.settings.photos_per_batch
        for start in range(0, len(photos), size):
            yield ("photos", photos[start : start + size])


class PreparePhotos:
    """A batch of photos -> `("face", PreparedFace)`, rejected rows and counts."""

    def __init__(self, settings: PrepareSettings):
        self.settings = settings

    def __call__(self, batch):
        from gfrnet_tf.faces.detect import detector

        detector()  # one MTCNN per worker process, built before the first photo
        landmarks = landmark_source(self.settings.landmarks)
        found = 0
        for identity, key, path in batch:
            _PROGRESS.tick()
            try:
                data = listing.read_photo(path, key, self.settings.max_photo_bytes)
                faces = prepare_photo(data, key, identity, landmarks, self.settings.faces)
            except GFRNetError as error:
                yield rejected_row(key, error.reason, error.problem)
                continue
            found += len(faces)
            for face in faces:
                yield ("face", face)
        yield _count("photos_read", len(batch))
        yield _count("faces_found", found)


def identity_key(face):
    return face.identity, face


def candidates_combiner(pairs: PairOptions):
    """A CombineFn reducing an identity's faces to the pair candidates before the shuffle."""
    import apache_beam as beam

    class Candidates(beam.CombineFn):
        def create_accumulator(self):
            return []

        def add_input(self, kept, face):
            return keep_candidates(kept + [face], pairs)

        def merge_accumulators(self, accumulators):
            return keep_candidates([face for kept in accumulators for face in kept], pairs)

        def extract_output(self, kept):
            return kept

    return Candidates()


class Pairs:
    """An identity's candidates -> `("pair", ((split, shard), (target key, example)))`."""

    def __init__(self, settings: PrepareSettings):
        self.settings = settings

    def __call__(self, item):
        from gfrnet_tf.data.records import encode_pair

        identity, faces = item
        settings = self.settings
        yield _count("identities")
        pairs, skip_reason = make_pairs(faces, settings.pairs)
        if skip_reason:
            yield _count(f"skipped_{skip_reason}")
            return
        split = split_of(identity, settings.pairs.val_fraction, settings.pairs.test_fraction)
        shard = shard_of(identity, settings.shards_in(split))
        yield _count(f"identities_{split}")
        if settings.export_guides:
            export_guide(settings.output, split, identity, pairs[0][1])
        for target, guide in pairs:
            yield _count(f"pairs_{split}")
            example = encode_pair(
                target.png,
                guide.png,
                target.landmarks,
                guide.landmarks,
                identity=identity,
                target_file=target.key,
                guide_file=guide.key,
            )
            yield ("pair", ((split, shard), (target.key, example)))


class WriteShard:
    """`((split, index), records)` -> the shard file -> `("shard", (name, count))`."""

    def __init__(self, settings: PrepareSettings):
        self.settings = settings

    def __call__(self, item):
        from gfrnet_tf.data.records import write_shard

        (split, index), records = item
        name = shard_name(split, index, self.settings.shards_in(split))
        written = write_shard(
            f"{self.settings.output}/{name}", [example for _, example in sorted(records)]
        )
        return ("shard", (name, written))


def sum_counts(item):
    name, values = item
    return _count(name, sum(values))


def keyed_for_summary(item):
    return _SUMMARY_KEY, item


class Finish:
    """The last step: rejected.tsv, stale shards removed, manifest.json (in that order)."""

    def __init__(self, settings: PrepareSettings):
        self.settings = settings

    def __call__(self, item):
        _, entries = item
        counts, rows, shards = collections.Counter(), [], {}
        for kind, value in entries:
            if kind == "count":
                counts[value[0]] += value[1]
            elif kind == "rejected":
                rows.append(value)
            else:
                shards[value[0]] = value[1]
        rows.sort()
        reasons = (row.split("\t")[1] for row in rows)
        counts.update(f"rejected_{reason}" for reason in reasons)
        output = self.settings.output
        _write_bytes(f"{output}/rejected.tsv", "".join(f"{row}\n" for row in rows).encode())
        removed = remove_stale_shards(output, shards)
        if removed:
            logging.info("gfrnet-prepare: removed %d shards of an earlier run", len(removed))
        write_dataset_manifest(self.settings, dict(counts), shards)
        return len(rows)


def write_dataset_manifest(settings: PrepareSettings, counts: dict, shards: dict) -> dict:
    """The `PreparedDataset` manifest (splits with their shards and exact record counts),
    then the run's details: records per shard, counts, the settings that made the data."""
    from gfrnet_tf.data.prepared import write_manifest

    splits = {}
    for split in SPLITS:
        names = sorted(name for name in shards if name.startswith(f"{split}-"))
        splits[split] = {"shards": names, "records": sum(shards[name] for name in names)}
    identities_listed = counts.pop("identities_listed", 0)
    return write_manifest(
        settings.output,
        splits,
        settings.faces.size,
        settings.pairs.synthetic_pose,
        shards=dict(sorted(shards.items())),
        counts=dict(sorted(counts.items())),
        identities_listed=identities_listed,
        configuration=settings.recorded(),
    )


class _Progress:
    """A log line every `every` photos per worker process (the run's counts come at the end)."""

    def __init__(self, every: int = 500):
        self.every, self.seen, self.start = every, 0, time.monotonic()

    def tick(self):
        self.seen += 1
        if self.seen % self.every == 0:
            rate = self.seen / (time.monotonic() - self.start)
            logging.info("gfrnet-prepare worker: %d photos, %.1f photos/s", self.seen, rate)


_PROGRESS = _Progress()


def export_guide(output: str, split: str, identity: str, guide) -> None:
    """`guides/<split>/<safe identity>.png` + `.json` (landmarks, source): what was chosen.

    Identity names come from the dataset, so they pass through `safe_name` first.
    """
    import tensorflow as tf

    folder = f"{output}/guides/{split}"
    tf.io.gfile.makedirs(folder)
    stem = f"{folder}/{safe_name(identity)}"
    _write_bytes(f"{stem}.png", guide.png)
    details = {
        "identity": identity,
        "photo": guide.key,
        "yaw": round(guide.yaw, 2),
        "roll": round(guide.roll, 2),
        "landmarks": guide.landmarks.round(2).tolist(),
    }
    _write_bytes(f"{stem}.json", json.dumps(details).encode())


def shard_name(split: str, index: int, total: int) -> str:
    return f"{split}-{index:05d}-of-{total:05d}.tfrecord"


def beam_module():
    with optional_dependency():
        import apache_beam
    return apache_beam


def build(pipeline, settings: PrepareSettings, identities: list) -> None:
    """Adds the preparation steps to `pipeline`, ending in the one step that writes the
    manifest (`identities` as `listing.list_identities` gives them)."""
    beam = beam_module()

    listed = (
        pipeline
        | "Identities" >> beam.Create(identities)
        | "ListPhotos" >> beam.FlatMap(ListPhotos(settings))
    )
    prepared = (
        listed
        | "Batches" >> beam.FlatMap(select, "photos")
        | "Spread" >> beam.Reshuffle()
        | "PreparePhotos" >> beam.FlatMap(PreparePhotos(settings))
    )
    paired = (
        prepared
        | "Faces" >> beam.FlatMap(select, "face")
        | "KeyByIdentity" >> beam.Map(identity_key)
        | "CandidatesPerIdentity" >> beam.CombinePerKey(candidates_combiner(settings.pairs))
        | "Pairs" >> beam.FlatMap(Pairs(settings))
    )
    shards = (
        paired
        | "PairsOnly" >> beam.FlatMap(select, "pair")
        | "GroupByShard" >> beam.GroupByKey()
        | "WriteShards" >> beam.Map(WriteShard(settings))
    )
    listed_count = pipeline | "IdentitiesListed" >> beam.Create(
        [_count("identities_listed", len(identities))]
    )
    counts = (
        (listed_count, listed, prepared, paired)
        | "AllSteps" >> beam.Flatten()
        | "CountsOnly" >> beam.FlatMap(select, "count")
        | "GroupCounts" >> beam.GroupByKey()
        | "SumCounts" >> beam.Map(sum_counts)
    )
    rejected = (
        (listed, prepared)
        | "ListAndPhotos" >> beam.Flatten()
        | "RejectedOnly" >> beam.FlatMap(keep, ("rejected",))
    )
    _ = (
        (counts, rejected, shards)
        | "Outcomes" >> beam.Flatten()
        | "KeyForSummary" >> beam.Map(keyed_for_summary)
        | "GatherSummary" >> beam.GroupByKey()
        | "Finish" >> beam.Map(Finish(settings))
    )


def run_pipeline(settings: PrepareSettings, beam_args: list[str]) -> dict:
    """Checks the folders, runs the pipeline to the end; returns the manifest it wrote."""
    beam = beam_module()
    import tensorflow as tf
    from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

    listing.check_output_outside_input(settings.input, settings.output)
    identities = listing.list_identities(settings.input)
    landmark_source(settings.landmarks)  # a missing landmark file fails here, not on workers
    prepare_output(settings.output)
    options = PipelineOptions(beam_args)
    if options.view_as(StandardOptions).runner is None and not any(
        arg.startswith("--direct_running_mode") for arg in beam_args
    ):
        # Default: the DirectRunner with one worker process per local core.
        direct = options.view_as(DirectOptions)
        direct.direct_running_mode, direct.direct_num_workers = "multi_processing", 0
    with optional_dependency("--runner"):  # a runner's own package, e.g. Dask
        pipeline = beam.Pipeline(options=options)
    build(pipeline, settings, identities)
    try:
        pipeline.run().wait_until_finish()
    except Exception as error:
        # A worker's failure (disk full, a runner's own error) arrives as whatever the
        # runner raises; the manifest is not written, so DIR is no dataset.
        raise GFRNetError(settings.output, f"the pipeline failed: {first_line(error)}") from error
    manifest_path = f"{settings.output}/manifest.json"
    if not tf.io.gfile.exists(manifest_path):
        raise BadConfigError(
            settings.output,
            "the pipeline finished without writing manifest.json (see the runner's log)",
        )
    with tf.io.gfile.GFile(manifest_path, "rb") as stream:
        return json.loads(stream.read())


def prepare_output(output: str) -> None:
    """Creates `output`, checks it is writable, removes an old manifest (an old manifest next
    to half-rewritten shards would look like a finished run). One line if it cannot be used."""
    import tensorflow as tf

    probe = f"{output}/.gfrnet-prepare-probe"
    try:
        tf.io.gfile.makedirs(output)
        _write_bytes(probe, b"")
        tf.io.gfile.remove(probe)
        if tf.io.gfile.exists(f"{output}/manifest.json"):
            tf.io.gfile.remove(f"{output}/manifest.json")
    except tf.errors.OpError as error:
        raise BadConfigError(output, f"cannot write the output folder ({error.message})") from None


def remove_stale_shards(output: str, written) -> list[str]:
    """Deletes shard files of an earlier run that this run did not rewrite.

    Only names of exactly our shard pattern are touched, so a `train-*` glob over the
    folder always reads this run's data and nothing else.
    """
    import tensorflow as tf

    _, names = listing.list_folder(listing.root_path(output))
    stale = sorted(
        text
        for text in map(listing.text_of, names)
        if SHARD_PATTERN.fullmatch(text) and text not in written
    )
    for name in stale:
        tf.io.gfile.remove(f"{output}/{name}")
    return stale


def _write_bytes(path: str, data: bytes) -> None:
    """Temp name + rename through `tf.io.gfile`, so remote output folders work too."""
    import tensorflow as tf

    temporary = f"{path}.tmp"
    try:
        with tf.io.gfile.GFile(temporary, "wb") as stream:
            stream.write(data)
        tf.io.gfile.rename(temporary, path, overwrite=True)
    finally:
        if tf.io.gfile.exists(temporary):
            tf.io.gfile.remove(temporary)
