"""`gfrnet-prepare`: photos grouped by identity -> face crops, landmarks, guides -> TFRecords.

    gfrnet-prepare --input ROOT --output DIR [--landmarks dlib|FILE_OR_DIR]
        [--max-per-identity 5] [--synthetic-pose] [--runner FlinkRunner ...]

Input: `ROOT/<identity>/<photo>` (the VGGFace2 / CASIA-WebFace layout). An Apache Beam pipeline:
the DirectRunner runs it locally over all cores; any other `--runner` and its options
are passed to Beam untouched, so the same code runs on Flink, Spark or Dataflow.

    list identities (driver) -> list photos -> reshuffle -> decode, detect, crop, landmarks
      -> per identity: keep guide/target candidates (a combiner, so only ~6 crops per
         identity are shuffled) -> guide + targets, split -> group by shard -> write shard

Outputs in DIR: `{train,val,test}-NNNNN-of-MMMMM.tfrecord` (the `gfrnet_tf.data.records`
schema), `rejected.tsv` (photo, reason, problem), with `--export-guides` each
identity's guide in `guides/<split>/`, and `manifest.json` (counts and the
configuration), written last, so a manifest means the run finished. The exit status is
1 when a file could not be read (bad image, bad landmark file), 0 otherwise: photos
without a usable face are filtered and counted, not failures.

Shards are written by our own step, not `WriteToTFRecord`: Beam's sink also writes to a
temporary folder and renames, but which record lands in which shard and in what order
depends on bundling, so re-runs would differ. Here an identity's pairs always go to the
shard its name hashes to, sorted by photo key, and every shard is written to a
temporary name and renamed: the same input gives byte-identical shards.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import re
import sys
import time

import tqdm

from gfrnet_tf.errors import BadConfigError, BadImageError, GFRNetError
from gfrnet_tf.io.paths import safe_name
from pipelines.identity import (SPLITS, PairOptions, keep_candidates, make_pairs, shard_of,
                                split_of)
from pipelines.photo import FaceOptions, prepare_photos

NAMESPACE = "gfrnet_prepare"
# Unreadable inputs are failures (exit status 1); faces filtered out are expected.
FAILURE_REASONS = ("bad_image", "no_landmarks")
PHOTOS_PER_BATCH = 16
MAX_PHOTO_BYTES = 200 * 2**20
SHARD_COUNTER = "records_in:"
SHARD_PATTERN = re.compile(r"(train|val|test)-\d{5}-of-\d{5}\.tfrecord")


@dataclasses.dataclass(frozen=True)
class PrepareSettings:
    """Everything the workers need; pickled once into each DoFn."""

    input: str
    output: str
    landmarks: str = "dlib"
    num_shards: int = 16
    export_guides: bool = False
    faces: FaceOptions = FaceOptions()
    pairs: PairOptions = PairOptions()

    def shards_in(self, split: str) -> int:
        """train gets `num_shards`; val and test proportionally fewer, at least one."""
        train = 1.0 - self.pairs.val_fraction - self.pairs.test_fraction
        fraction = {"train": train, "val": self.pairs.val_fraction,
                    "test": self.pairs.test_fraction}[split]
        return max(1, math.ceil(self.num_shards * fraction / max(train, 1e-9)))


def landmark_source(spec: str):
    """`dlib` -> dlib's predictor; anything else is a `.pts` folder or a CSV file."""
    from gfrnet_tf.faces import DlibLandmarks, FileLandmarks

    return DlibLandmarks() if spec == "dlib" else FileLandmarks(spec)


def list_identities(root: str) -> list[str]:
    """Sub-folder names of `root`, sorted (hidden ones skipped)."""
    import tensorflow as tf

    if not tf.io.gfile.isdir(root):
        raise BadConfigError(root, "--input is not a folder")
    names = sorted(name.rstrip("/") for name in tf.io.gfile.listdir(root))
    return [name for name in tqdm.tqdm(names, desc="listing identities", unit="folder",
                                       disable=None)
            if not name.startswith(".") and tf.io.gfile.isdir(f"{root}/{name}")]


def tsv_field(text: str) -> str:
    """Tabs and line breaks (possible in scraped file names) become spaces."""
    return re.sub(r"[\t\r\n]", " ", text)


def read_bytes(path: str, key: str) -> bytes:
    """A photo's bytes through `tf.io.gfile` (local, GCS, HDFS); unreadable -> BadImageError."""
    import tensorflow as tf

    try:
        size = tf.io.gfile.stat(path).length
        if size > MAX_PHOTO_BYTES:
            # The loader's pixel limit needs only the header, but the bytes are read first.
            raise BadImageError(key, f"{size} bytes, more than {MAX_PHOTO_BYTES} for a photo")
        with tf.io.gfile.GFile(path, "rb") as stream:
            return stream.read()
    except tf.errors.OpError as error:
        raise BadImageError(key, f"cannot read ({error.message})") from None


def _beam():
    try:
        import apache_beam
    except ImportError:
        raise BadConfigError("apache_beam", "not installed: pip install gfrnet_tf[beam]")
    return apache_beam


def build(pipeline, settings: PrepareSettings, identities: list[str]):
    """Adds the preparation steps to `pipeline`; returns the written shards' names."""
    beam = _beam()
    from apache_beam.metrics import Metrics

    def count(name, value=1):
        Metrics.counter(NAMESPACE, name).inc(value)

    def list_photos(identity):
        import tensorflow as tf

        folder = f"{settings.input}/{identity}"
        names = sorted(n for n in tf.io.gfile.listdir(folder)
                       if not n.startswith(".") and not tf.io.gfile.isdir(f"{folder}/{n}"))
        if not names:
            count("rejected_empty_identity")
        for name in names:
            yield identity, f"{identity}/{name}"

    class PreparePhotos(beam.DoFn):
        """Read, decode, detect (batched), crop, landmarks; rejections to `rejected`."""

        def setup(self):
            from gfrnet_tf.faces.detect import detector

            detector()  # one MTCNN per worker process, built before the first photo
            self.landmarks = landmark_source(settings.landmarks)
            self.progress = WorkerProgress()

        def process(self, batch):
            photos, outcomes = [], []
            for identity, key in batch:
                count("photos_read")
                self.progress.tick()
                try:
                    photos.append((key, identity, read_bytes(f"{settings.input}/{key}", key)))
                except GFRNetError as error:
                    outcomes.append((key, error))
            outcomes += prepare_photos(photos, self.landmarks, settings.faces)
            for key, outcome in outcomes:
                if isinstance(outcome, GFRNetError):
                    count(f"rejected_{outcome.reason}")
                    fields = (key, outcome.reason, outcome.problem)
                    yield beam.pvalue.TaggedOutput("rejected", "\t".join(map(tsv_field, fields)))
                else:
                    count("faces_found", len(outcome))
                    yield from outcome

    class Candidates(beam.CombineFn):
        """Reduces an identity's faces to the pair candidates before they are shuffled."""

        def create_accumulator(self):
            return []

        def add_input(self, kept, face):
            return keep_candidates(kept + [face], settings.pairs)

        def merge_accumulators(self, accumulators):
            return keep_candidates([face for kept in accumulators for face in kept],
                                   settings.pairs)

        def extract_output(self, kept):
            return kept

    def pairs_of(item):
        from gfrnet_tf.data.records import encode_pair

        identity, faces = item
        count("identities")
        pairs, skip_reason = make_pairs(faces, settings.pairs)
        if skip_reason:
            count(f"skipped_{skip_reason}")
            return
        split = split_of(identity, settings.pairs.val_fraction, settings.pairs.test_fraction)
        shard = shard_of(identity, settings.shards_in(split))
        count(f"identities_{split}")
        if settings.export_guides:
            export_guide(settings.output, split, identity, pairs[0][1])
        for target, guide in pairs:
            count(f"pairs_{split}")
            example = encode_pair(target.png, guide.png, target.landmarks, guide.landmarks,
                                  identity=identity, target_file=target.key,
                                  guide_file=guide.key)
            yield (split, shard), (target.key, example)

    def write(item):
        from gfrnet_tf.data.records import write_shard

        (split, index), records = item
        name = shard_name(split, index, settings.shards_in(split))
        written = write_shard(f"{settings.output}/{name}",
                              [example for _, example in sorted(records)])
        count(f"{SHARD_COUNTER}{name}", written)  # the manifest's list of this run's shards
        return name

    prepared = (
        pipeline
        | "Identities" >> beam.Create(identities)
        | "ListPhotos" >> beam.FlatMap(list_photos)
        | "Spread" >> beam.Reshuffle()
        # Batches feed MTCNN several photos per call (2.3x less CPU per photo at 8).
        | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=PHOTOS_PER_BATCH)
        | "PreparePhotos" >> beam.ParDo(PreparePhotos()).with_outputs("rejected", main="faces"))
    _ = prepared.rejected | "WriteRejected" >> beam.io.WriteToText(
        f"{settings.output}/rejected", file_name_suffix=".tsv", shard_name_template="")
    return (
        prepared.faces
        | "KeyByIdentity" >> beam.Map(lambda face: (face.identity, face))
        | "CandidatesPerIdentity" >> beam.CombinePerKey(Candidates())
        | "Pairs" >> beam.FlatMap(pairs_of)
        | "GroupByShard" >> beam.GroupByKey()
        | "WriteShards" >> beam.Map(write))


class WorkerProgress:
    """A log line every `every` photos per worker: Beam counters are only read at the end."""

    def __init__(self, every: int = 500):
        self.every, self.seen, self.start = every, 0, time.monotonic()

    def tick(self):
        self.seen += 1
        if self.seen % self.every == 0:
            rate = self.seen / (time.monotonic() - self.start)
            logging.info("gfrnet-prepare worker: %d photos, %.1f photos/s", self.seen, rate)


def export_guide(output: str, split: str, identity: str, guide) -> None:
    """`guides/<split>/<safe identity>.png` + `.json` (landmarks, source): what was chosen.

    Identity names come from the dataset, so they pass through `safe_name` first.
    """
    import tensorflow as tf

    folder = f"{output}/guides/{split}"
    tf.io.gfile.makedirs(folder)
    stem = f"{folder}/{safe_name(identity)}"
    _write_bytes(f"{stem}.png", guide.png)
    details = {"identity": identity, "photo": guide.key, "yaw": round(guide.yaw, 2),
               "roll": round(guide.roll, 2), "landmarks": guide.landmarks.round(2).tolist()}
    _write_bytes(f"{stem}.json", json.dumps(details).encode())


def shard_name(split: str, index: int, total: int) -> str:
    return f"{split}-{index:05d}-of-{total:05d}.tfrecord"


def run_pipeline(settings: PrepareSettings, beam_args: list[str]) -> dict:
    """Runs the pipeline to the end, writes the manifest; returns it."""
    beam = _beam()
    from apache_beam.metrics.metric import MetricsFilter
    from apache_beam.options.pipeline_options import (DirectOptions, PipelineOptions,
                                                      StandardOptions)
    import tensorflow as tf

    identities = list_identities(settings.input)
    landmark_source(settings.landmarks)  # a missing landmark file fails here, not on workers
    tf.io.gfile.makedirs(settings.output)
    manifest_path = f"{settings.output}/manifest.json"
    if tf.io.gfile.exists(manifest_path):
        # An old manifest next to half-rewritten shards would look like a finished run.
        tf.io.gfile.remove(manifest_path)
    options = PipelineOptions(beam_args)
    if options.view_as(StandardOptions).runner is None and not any(
            arg.startswith("--direct_running_mode") for arg in beam_args):
        # Default: the DirectRunner with one worker process per local core.
        direct = options.view_as(DirectOptions)
        direct.direct_running_mode, direct.direct_num_workers = "multi_processing", 0
    pipeline = beam.Pipeline(options=options)
    build(pipeline, settings, identities)
    result = pipeline.run()
    result.wait_until_finish()
    counts = {}
    for counter in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]:
        value = counter.committed if counter.committed is not None else counter.attempted
        counts[counter.key.metric.name] = counts.get(counter.key.metric.name, 0) + value
    shards = {name[len(SHARD_COUNTER):]: counts.pop(name)
              for name in sorted(counts) if name.startswith(SHARD_COUNTER)}
    stale = remove_stale_shards(settings.output, shards)
    manifest = {
        "counts": dict(sorted(counts.items())),
        "shards": shards,
        "stale_shards_removed": stale,
        "identities_listed": len(identities),
        "configuration": dataclasses.asdict(settings),
        "beam_args": beam_args,
    }
    _write_bytes(manifest_path, json.dumps(manifest, indent=1).encode())
    return manifest


def remove_stale_shards(output: str, written) -> list[str]:
    """Deletes shard files of an earlier run that this run did not rewrite.

    Only names of exactly our shard pattern are touched, so a `train-*` glob over the
    folder always reads this run's data and nothing else.
    """
    import tensorflow as tf

    stale = sorted(name for name in tf.io.gfile.listdir(output)
                   if SHARD_PATTERN.fullmatch(name) and name not in written)
    for name in stale:
        tf.io.gfile.remove(f"{output}/{name}")
    return stale


def _write_bytes(path: str, data: bytes) -> None:
    """Temp name + rename through `tf.io.gfile`, so remote output folders work too."""
    import tensorflow as tf

    temporary = f"{path}.tmp"
    with tf.io.gfile.GFile(temporary, "wb") as stream:
        stream.write(data)
    tf.io.gfile.rename(temporary, path, overwrite=True)


def summary(manifest: dict) -> str:
    """The one line printed at the end."""
    counts = manifest["counts"]
    rejected = ", ".join(f"{k[len('rejected_'):]} {v}" for k, v in counts.items()
                         if k.startswith("rejected_")) or "none"
    skipped = ", ".join(f"{k[len('skipped_'):]} {v}" for k, v in counts.items()
                        if k.startswith("skipped_")) or "none"
    pairs = ", ".join(f"{s} {counts.get(f'pairs_{s}', 0)}" for s in SPLITS)
    return (f"photos read {counts.get('photos_read', 0)}, faces {counts.get('faces_found', 0)}"
            f"; rejected: {rejected}; identities skipped: {skipped}; pairs: {pairs}"
            f"; {len(manifest['shards'])} shards")


def parse_args(argv):
    """Our flags -> `PrepareSettings`; everything else is left for Beam's PipelineOptions."""
    parser = argparse.ArgumentParser(
        prog="gfrnet-prepare", description=__doc__.split("\n")[0],
        epilog="Any other --flag goes to Beam's PipelineOptions, e.g. --runner FlinkRunner "
               "--flink_master HOST:PORT, or --direct_num_workers 4. Without --runner: "
               "the DirectRunner, one worker process per core.")
    parser.add_argument("--input", required=True, help="ROOT with one folder per identity")
    parser.add_argument("--output", required=True, help="folder for shards and manifest")
    parser.add_argument("--landmarks", default="dlib",
                        help="'dlib', or a folder of 300W .pts files mirroring ROOT, or a "
                             "CSV of image,x0,y0,...,x67,y67")
    parser.add_argument("--max-per-identity", type=int, default=5,
                        help="photos per identity: one guide + up to N-1 targets (§4.1)")
    parser.add_argument("--synthetic-pose", action="store_true",
                        help="identities with one photo become guide==target pairs")
    parser.add_argument("--all-faces", action="store_true",
                        help="keep every face of a photo, not only the most confident")
    parser.add_argument("--export-guides", action="store_true",
                        help="also write each identity's chosen guide to guides/<split>/")
    parser.add_argument("--num-shards", type=int, default=16, help="train shards")
    parser.add_argument("--val-fraction", type=float, default=0.05,
                        help="identities (by name hash) in the validation split")
    parser.add_argument("--test-fraction", type=float, default=0.05,
                        help="identities (by name hash) in the test split")
    defaults = FaceOptions()
    parser.add_argument("--image-size", type=int, default=defaults.size,
                        help="side of the square face crops")
    parser.add_argument("--margin", type=float, default=defaults.margin,
                        help="crop margin each side, in face-box sides")
    parser.add_argument("--min-face-size", type=int, default=defaults.min_face_size,
                        help="smaller face boxes (px) are rejected")
    parser.add_argument("--min-confidence", type=float, default=defaults.min_confidence,
                        help="MTCNN score below which a face is ignored")
    parser.add_argument("--min-sharpness", type=float, default=defaults.min_sharpness,
                        help="face-box Laplacian variance below which a photo is rejected")
    parser.add_argument("--min-eye-aspect-ratio", type=float,
                        default=PairOptions().min_eye_aspect_ratio,
                        help="guides need eyes at least this open")
    parser.add_argument("--max-pixels", type=int, default=defaults.max_pixels,
                        help="larger photos are refused from their header")
    parser.add_argument("--debug", action="store_true", help="full tracebacks")
    args, beam_args = parser.parse_known_args(argv)
    if args.all_faces and args.landmarks != "dlib":
        raise BadConfigError("--all-faces", "needs --landmarks dlib: a landmark file "
                                            "describes one face per photo")
    if not 0 <= args.val_fraction + args.test_fraction < 1:
        raise BadConfigError("--val-fraction/--test-fraction", "must sum to less than 1")
    if args.max_per_identity < 2:
        raise BadConfigError("--max-per-identity", "must be at least 2 (a guide and a target)")
    settings = PrepareSettings(
        input=args.input.rstrip("/"), output=args.output.rstrip("/"),
        landmarks=args.landmarks, num_shards=args.num_shards,
        export_guides=args.export_guides,
        faces=FaceOptions(size=args.image_size, margin=args.margin,
                          min_face_size=args.min_face_size,
                          min_confidence=args.min_confidence,
                          min_sharpness=args.min_sharpness, all_faces=args.all_faces,
                          max_pixels=args.max_pixels),
        pairs=PairOptions(max_per_identity=args.max_per_identity,
                          min_eye_aspect_ratio=args.min_eye_aspect_ratio,
                          synthetic_pose=args.synthetic_pose,
                          val_fraction=args.val_fraction, test_fraction=args.test_fraction))
    return settings, beam_args, args.debug


def main(argv=None) -> int:
    """Returns the exit status: 1 when a file could not be read, else 0."""
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    try:
        settings, beam_args, debug = parse_args(argv)
        manifest = run_pipeline(settings, beam_args)
    except GFRNetError as error:
        if debug:
            raise
        print(f"error: {error.source}: {error.problem}", file=sys.stderr)
        return 1
    print(f"gfrnet-prepare: {summary(manifest)}; manifest {settings.output}/manifest.json")
    failed = sum(manifest["counts"].get(f"rejected_{r}", 0) for r in FAILURE_REASONS)
    return 1 if failed else 0


def run():
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
