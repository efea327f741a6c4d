"""Restoring a library on Beam: photos/s on one machine, the DirectRunner and Dask, one run.

    python -m benchmarks.archive --photos 120 --small 20 --album 40 --workdir DIR
    python -m benchmarks.archive --grouping 1000,2000,4000,8000 --workdir DIR

The library and the model are `benchmarks.library`'s (640x480 photos, one or two faces of
three real people, half of them degraded, albums of `--album` photos; the paper's
pix2pix-width model with random weights as an int8 `.tflite` or a SavedModel), made in
`--workdir`. Three ways of running `gfrnet-restore` on it, each a new process timed by
the wall clock, one after the other in the same run:

- `one machine`: the command as it is (one process; TensorFlow/LiteRT use both cores);
- `DirectRunner x2`: `--runner DirectRunner` over two worker processes;
- `Dask x2`: `--runner DaskRunner` on a `distributed.LocalCluster` of two single-threaded
  worker processes on 127.0.0.1, started before the clock runs.

Each runs on `--photos` and on `--small` photos (the same generator, fewer albums): the
difference is the per-photo rate without the start-up (imports, model loading, worker
processes). Every mode's output tree must be byte-identical to the one-machine run's
(reported). The per-photo cost split is `benchmarks.library`'s (CPU seconds per stage in
one process), run on the same library first. The projection: hours for 1 million photos
on N machines of this size = 1e6 / (N x a runner's two-process marginal rate) / 3600, per
runner (`projection`), the start-up once. `--grouping 1000,4000` only times the one keyed
step whose cost grows faster than the photos: `find_people` on one album (docs/ARCHIVE.md,
"People at archive scale").
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

from gfrnet_tf.pipelines.runner import DASK_RUNNER
from tests.support import run_module, tree_hashes

PROJECTED_PHOTOS = 1_000_000
MACHINES = (1, 10, 100)


def restore(model: Path, root: Path, out: Path, *extra) -> float:
    """Wall seconds of one `gfrnet-restore` run (a new process)."""
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    done = run_module(
        "gfrnet_tf.apps.restore",
        f"--model={model}",
        f"--input={root}",
        f"--output={out}",
        "--identity_every=0",
        *extra,
        timeout=None,
    )
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 1) or not (out / "faces.csv").exists():
        raise RuntimeError(f"{out}: exit {done.returncode}\n{done.stderr[-3000:]}")
    return seconds


def cost_split(args) -> dict:
    """`benchmarks.library` on the same library: CPU seconds per stage, one process."""
    report = args.workdir / f"library-{args.photos}.json"
    run_module(
        "benchmarks.library",
        f"--photos={args.photos}",
        f"--album={args.album}",
        f"--backends={args.backend}",
        f"--workdir={args.workdir}",
        f"--json={report}",
        timeout=None,
        check=True,
    )
    measured = json.loads(report.read_text())[args.backend]
    return {
        "cpu_seconds_per_photo": {
            stage: round(seconds / args.photos, 4)
            for stage, seconds in measured["cpu_seconds"].items()
        },
        "photos_per_cpu_second": measured["photos_per_cpu_second"],
    }


def grouping_seconds(faces: int, per_person: int = 20, seed: int = 0) -> float:
    """Seconds of `find_people` on one album of `faces` faces (dlib-like embeddings: people
    0.6 apart, their faces scattered 0.25 around them), the keyed step's share of a run."""
    import numpy as np

    from gfrnet_tf.people import FaceQuality, FaceRecord
    from gfrnet_tf.restoration.library import default_options, find_people

    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (max(faces // per_person, 1), 128))
    centres *= 0.6 / np.linalg.norm(centres, axis=1, keepdims=True)
    who = rng.integers(0, len(centres), faces)
    embeddings = centres[who] + rng.normal(0, 0.25 / np.sqrt(128), (faces, 128))
    quality = FaceQuality(64.0, 1.0, 0.0, 0.3, 0.5)
    records = [
        FaceRecord(f"album/{i:07d}.jpg", 0, (0, 0, 64, 64), np.zeros((68, 2)), e, quality)
        for i, e in enumerate(embeddings)
    ]
    start = time.perf_counter()
    find_people(records, (), default_options())
    return time.perf_counter() - start


def projection(modes: dict) -> dict:
    """Hours for 1 million photos on N machines like this one, from each runner's marginal
    rate on it (start-up, the per-album step and the report step not counted)."""
    return {
        name: {
            f"{machines} machine(s)": round(
                PROJECTED_PHOTOS
                / (machines * max(mode["marginal_photos_per_second"], 1e-9))
                / 3600,
                1,
            )
            for machines in MACHINES
        }
        for name, mode in modes.items()
        if name != "one machine"
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--small", type=int, default=20)
    parser.add_argument("--album", type=int, default=50)
    parser.add_argument("--backend", default="int8", choices=["int8", "savedmodel"])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--grouping",
        default="",
        help="only time find_people on one album of these many faces (comma-separated)",
    )
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.grouping:
        for faces in map(int, args.grouping.split(",")):
            load = os.getloadavg()[0]
            print(f"find_people, {faces} faces: {grouping_seconds(faces):.1f} s (load {load:.1f})")
        return

    import distributed

    from benchmarks.identity_rule import emit
    from benchmarks.library import generate, models

    results = {"photos": args.photos, "small": args.small, "backend": args.backend}
    results["load_before"] = [round(v, 2) for v in os.getloadavg()]
    results["cost_split"] = cost_split(args)  # also makes the library and the model
    model = models(args.workdir, [args.backend])[args.backend]
    roots = {args.photos: args.workdir / f"library-{args.photos}"}
    roots[args.small] = args.workdir / f"library-{args.small}"
    if not roots[args.small].exists():
        generate(roots[args.small], args.small, args.album)

    modes = {
        "one machine": [],
        "DirectRunner x2": [
            "--runner=DirectRunner",
            "--direct_running_mode=multi_processing",
            "--direct_num_workers=2",
        ],
    }
    seconds: dict[str, dict[int, float]] = {}
    reference = None
    identical = {}
    with distributed.LocalCluster(
        host="127.0.0.1", n_workers=2, threads_per_worker=1, dashboard_address=None
    ) as cluster:
        modes["Dask x2"] = [
            f"--runner={DASK_RUNNER}",
            "--dask_client_address",
            cluster.scheduler_address,
            "--dask_npartitions=8",  # Dask spreads work by partitions; Reshuffle is no step
        ]
        for name, extra in modes.items():
            seconds[name] = {}
            for count, root in roots.items():
                out = args.workdir / f"out-{name.split()[0].lower()}-{count}"
                load = os.getloadavg()[0]
                seconds[name][count] = restore(model, root, out, *extra)
                print(f"{name}, {count} photos: {seconds[name][count]:.1f} s (load {load:.1f})")
                if count == args.photos:
                    tree = tree_hashes(out)
                    reference = reference or tree
                    identical[name] = tree == reference
    table = {}
    for name, by_count in seconds.items():
        marginal = (args.photos - args.small) / (by_count[args.photos] - by_count[args.small])
        table[name] = {
            "wall_seconds": {str(k): round(v, 1) for k, v in by_count.items()},
            "photos_per_second": round(args.photos / by_count[args.photos], 3),
            "marginal_photos_per_second": round(marginal, 3),
            "start_up_seconds": round(by_count[args.small] - args.small / marginal, 1),
            "byte_identical_to_one_machine": identical[name],
        }
    results["modes"] = table
    results["projection_hours_for_1M_photos"] = projection(table)
    results["load_after"] = [round(v, 2) for v in os.getloadavg()]
    emit(results, args.json)


if __name__ == "__main__":
    main()
