"""`gfrnet-prepare`: photos grouped by identity -> face crops, landmarks, guides -> a dataset.

    gfrnet-prepare --input ROOT --output DIR [--landmarks dlib|FILE_OR_DIR]
        [--max_per_identity 5] [--synthetic_pose] [--runner ... (any Beam option)]

`ROOT/<identity>/<photo>` in, a dataset folder out (`gfrnet_tf.pipelines.prepare`): shards,
`rejected.tsv` and `manifest.json`, which `gfrnet-train --data DIR` reads. The DirectRunner
runs it locally over all cores; any other `--runner` and its options go to Beam untouched
(docs/PREPARE.md: Dask, Flink, Spark, Dataflow). The exit status is 1 when a file could not
be read (bad image, unreadable folder, bad landmark file), 0 otherwise: photos without a
usable face are filtered and counted, not failures. Multi-word flags take underscores (as
documented) or dashes.
"""

from __future__ import annotations

import argparse
import logging
import sys

from gfrnet_tf.apps import quiet
from gfrnet_tf.apps.common import check_arguments, spelled_as_defined
from gfrnet_tf.errors import BadConfigError, GFRNetError
from gfrnet_tf.io.paths import printable
from gfrnet_tf.pipelines.identity import SPLITS, PairOptions
from gfrnet_tf.pipelines.photo import FaceOptions
from gfrnet_tf.pipelines.prepare import FAILURE_REASONS, PrepareSettings, run_pipeline


def summary(manifest: dict) -> str:
    """The one line printed at the end."""
    counts = manifest["counts"]
    rejected = (
        ", ".join(
            f"{k[len('rejected_') :]} {v}" for k, v in counts.items() if k.startswith("rejected_")
        )
        or "none"
    )
    skipped = (
        ", ".join(
            f"{k[len('skipped_') :]} {v}" for k, v in counts.items() if k.startswith("skipped_")
        )
        or "none"
    )
    pairs = ", ".join(f"{s} {manifest['splits'][s]['records']}" for s in SPLITS)
    return (
        f"photos read {counts.get('photos_read', 0)}, faces {counts.get('faces_found', 0)}"
        f"; rejected: {rejected}; identities skipped: {skipped}; pairs: {pairs}"
        f"; {len(manifest['shards'])} shards"
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _positional(beam_args: list[str]) -> list[str]:
    """The words left for Beam that are no option's value, read as Beam reads options it does
    not know: a word right after `--name` (without `=`) is that option's value."""
    return [
        word
        for before, word in zip(["-"] + beam_args, beam_args)
        if not word.startswith("-") and not (before.startswith("--") and "=" not in before)
    ]


def parse_args(argv):
    """Our flags -> `PrepareSettings`; everything else is left for Beam's PipelineOptions."""
    parser = argparse.ArgumentParser(
        prog="gfrnet-prepare",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="Any other --flag goes to Beam's PipelineOptions, e.g. --runner FlinkRunner "
        "--flink_master HOST:PORT, or --direct_num_workers 4. Without --runner: "
        "the DirectRunner, one worker process per core.",
    )
    parser.add_argument("--input", required=True, help="ROOT with one folder per identity")
    parser.add_argument(
        "--output",
        required=True,
        help="dataset folder (shards, rejected.tsv, manifest.json); must not be inside --input",
    )
    parser.add_argument(
        "--landmarks",
        default="dlib",
        help="'dlib', or a folder of 300W .pts files mirroring ROOT, or a "
        "CSV of image,x0,y0,...,x67,y67",
    )
    parser.add_argument(
        "--max_per_identity",
        type=int,
        default=5,
        help="photos per identity: one guide + up to N-1 targets (§4.1)",
    )
    parser.add_argument(
        "--synthetic_pose",
        action="store_true",
        help="identities with one photo become guide==target pairs",
    )
    parser.add_argument(
        "--all_faces",
        action="store_true",
        help="keep every face of a photo, not only the most confident",
    )
    parser.add_argument(
        "--export_guides",
        action="store_true",
        help="also write each identity's chosen guide to guides/<split>/",
    )
    parser.add_argument("--num_shards", type=_positive, default=16, help="train shards")
    parser.add_argument(
        "--val_fraction",
        type=float,
        default=0.05,
        help="identities (by name hash) in the validation split",
    )
    parser.add_argument(
        "--test_fraction",
        type=float,
        default=0.05,
        help="identities (by name hash) in the test split",
    )
    parser.add_argument(
        "--photos_per_batch",
        type=_positive,
        default=PrepareSettings.photos_per_batch,
        help="photos per pipeline element (shuffle granularity; outputs "
        "are the same for any value)",
    )
    parser.add_argument(
        "--max_photo_bytes",
        type=_positive,
        default=PrepareSettings.max_photo_bytes,
        help="larger files are rejected without being read",
    )
    defaults = FaceOptions()
    parser.add_argument(
        "--image_size", type=_positive, default=defaults.size, help="side of the square face crops"
    )
    parser.add_argument(
        "--margin",
        type=float,
        default=defaults.margin,
        help="crop margin each side, in face-box sides",
    )
    parser.add_argument(
        "--min_face_size",
        type=int,
        default=defaults.min_face_size,
        help="smaller face boxes (px) are rejected",
    )
    parser.add_argument(
        "--min_confidence",
        type=float,
        default=defaults.min_confidence,
        help="MTCNN score below which a face is ignored",
    )
    parser.add_argument(
        "--min_sharpness",
        type=float,
        default=defaults.min_sharpness,
        help="face-box Laplacian variance below which a photo is rejected",
    )
    parser.add_argument(
        "--min_eye_aspect_ratio",
        type=float,
        default=PairOptions().min_eye_aspect_ratio,
        help="guides need eyes at least this open",
    )
    parser.add_argument(
        "--max_pixels",
        type=_positive,
        default=defaults.max_pixels,
        help="larger photos are refused from their header",
    )
    parser.add_argument("--debug", action="store_true", help="full tracebacks")
    parser.add_argument("--helpshort", "--helpfull", action="help", help=argparse.SUPPRESS)
    options = {option.lstrip("-") for action in parser._actions for option in action.option_strings}
    args, beam_args = parser.parse_known_args(spelled_as_defined(argv, options.__contains__))
    check_arguments(_positional(beam_args))
    if args.all_faces and args.landmarks != "dlib":
        raise BadConfigError(
            "--all_faces", "needs --landmarks dlib: a landmark file describes one face per photo"
        )
    if not 0 <= args.val_fraction + args.test_fraction < 1:
        raise BadConfigError("--val_fraction/--test_fraction", "must sum to less than 1")
    if args.max_per_identity < 2:
        raise BadConfigError("--max_per_identity", "must be at least 2 (a guide and a target)")
    settings = PrepareSettings(
        input=args.input.rstrip("/") or "/",
        output=args.output.rstrip("/") or "/",
        landmarks=args.landmarks,
        num_shards=args.num_shards,
        export_guides=args.export_guides,
        photos_per_batch=args.photos_per_batch,
        max_photo_bytes=args.max_photo_bytes,
        faces=FaceOptions(
            size=args.image_size,
            margin=args.margin,
            min_face_size=args.min_face_size,
            min_confidence=args.min_confidence,
            min_sharpness=args.min_sharpness,
            all_faces=args.all_faces,
            max_pixels=args.max_pixels,
        ),
        pairs=PairOptions(
            max_per_identity=args.max_per_identity,
            min_eye_aspect_ratio=args.min_eye_aspect_ratio,
            synthetic_pose=args.synthetic_pose,
            val_fraction=args.val_fraction,
            test_fraction=args.test_fraction,
        ),
    )
    return settings, beam_args, args.debug


class _NoBeamTracebacks(logging.Filter):
    """Beam logs a failing step's traceback before re-raising the error, which the command
    then prints as one line; `--debug` keeps the traceback."""

    def filter(self, record):
        return not (record.name.startswith("apache_beam") and record.exc_info)


def main(argv=None) -> int:
    """Returns the exit status: 1 when a file could not be read, else 0."""
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    if not debug:
        logging.basicConfig()  # the stderr handler Beam's first log line would create
        for handler in logging.getLogger().handlers:
            handler.addFilter(_NoBeamTracebacks())
    try:
        settings, beam_args, debug = parse_args(argv)
        # Before Beam or MTCNN load it: TensorFlow's start-up lines stay out of the output.
        quiet.import_tensorflow(quiet.QUIET)
        manifest = run_pipeline(settings, beam_args)
    except GFRNetError as error:
        if debug:
            raise
        print(f"error: {printable(error.source)}: {printable(error.problem)}", file=sys.stderr)
        return 1
    print(
        f"gfrnet-prepare: {summary(manifest)}; manifest {printable(settings.output)}/manifest.json"
    )
    failed = sum(manifest["counts"].get(f"rejected_{r}", 0) for r in FAILURE_REASONS)
    return 1 if failed else 0


def run():
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
