"""`gfrnet-restore --runner NAME`: restoring a library on Apache Beam (docs/ARCHIVE.md).

    gfrnet-restore --model M --input ROOT --output OUT [--guides DIR] \\
        --runner apache_beam.runners.dask.dask_runner.DaskRunner \\
        --dask_client_address tcp://SCHEDULER:8786

With `--runner`, every flag `gfrnet-restore` does not know is one of Beam's pipeline
options (as `gfrnet-prepare` takes them), and the library restoration runs as the
`gfrnet_tf.pipelines.archive` pipeline: the same `OUT` tree, `faces.csv`, `people.json`
and contact sheets as on one machine, byte for byte. `--runner DirectRunner` runs it
locally over every core. The library is listed and the named people are read on this
machine; workers must see ROOT, OUT, the model and the guides under the same paths.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import os
from pathlib import Path

from absl import flags

from gfrnet_tf.errors import BadConfigError

RUNNER = flags.DEFINE_string(
    "runner",
    None,
    "Restore on Apache Beam with this runner (DirectRunner, DataflowRunner, FlinkRunner, "
    "SparkRunner, apache_beam.runners.dask.dask_runner.DaskRunner); every flag this "
    "command does not know goes to Beam's pipeline options (docs/ARCHIVE.md).",
)
PHOTOS_PER_CHUNK = flags.DEFINE_integer(
    "photos_per_chunk",
    16,
    "With --runner: photos per pipeline element after people are found (how finely the "
    "restoring work spreads over workers; the outputs are the same for any value).",
    lower_bound=1,
)


def runner_given(argv) -> bool:
    """With `--runner`, the flags `gfrnet-restore` does not know are Beam's pipeline options
    (`make_run`'s `passes_on`)."""
    return any(arg == "--runner" or arg.startswith("--runner=") for arg in argv[1:])


def check_flags(aligned: bool) -> None:
    """What the pipeline does not do, refused before anything is read."""
    if RUNNER.value and aligned:
        raise BadConfigError(
            "--runner", "restores a library by person; --aligned crops run on one machine"
        )


def restore_on_beam(root, output, model, named, settings, options, clips, beam_args, warn, policy):
    """`restore_library` on the `--runner` (see `gfrnet_tf.pipelines.archive`); returns the
    same `LibrarySummary`, read from the report the pipeline wrote, and calls `warn(path,
    problem)` for each file that could not be read, as `restore_library` does."""
    from gfrnet_tf.people import FACES_CSV
    from gfrnet_tf.pipelines.runner import QUIET_WORKERS, beam_module, quiet_beam_logs
    from gfrnet_tf.restoration.analysis import NO_FACE
    from gfrnet_tf.restoration.library import LibrarySummary, list_library
    from gfrnet_tf.restoration.report import PEOPLE_JSON

    beam_module()  # one line if Beam is not installed
    from gfrnet_tf.pipelines.archive import ArchiveSettings, restore_archive

    beam_args = [*beam_args, "--runner", RUNNER.value]
    if not flags.FLAGS.debug:
        quiet_beam_logs()
        beam_args = [*QUIET_WORKERS, *beam_args]  # the user's own overrides win
    # Workers run in other folders, on other machines: they get absolute paths.
    absolute_root = Path(root).absolute()
    items = list_library(absolute_root)
    on_workers = copy.copy(output)
    on_workers.path = Path(output.path).absolute()
    model = os.path.abspath(model)
    sources = {photo: os.path.abspath(path) for photo, path in named.sources.items()}
    named = dataclasses.replace(named, sources=sources)
    archive = ArchiveSettings(
        on_workers, model, settings, options, PHOTOS_PER_CHUNK.value, clips, policy
    )
    restore_archive(items, archive, named, beam_args)
    with open(on_workers.path / FACES_CSV, newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    paths = {item.photo: Path(root) / Path(item.path).relative_to(absolute_root) for item in items}
    for row in rows:
        problem = row["action"].removeprefix("skipped: ")
        if row["face"] == "-1" and problem != NO_FACE:
            warn(paths[row["photo"]], problem)
    people = json.loads((on_workers.path / PEOPLE_JSON).read_text(encoding="utf-8"))["people"]
    return LibrarySummary(files=len(items), people=len(people)).count(rows)
