"""Running one of the project's Beam pipelines from a command: options, runner, failures.

Shared by `gfrnet-prepare` and `gfrnet-restore --runner`: Beam is an optional extra (one
line if missing); without `--runner` (or `--direct_running_mode`) the DirectRunner runs
one worker process per local core; whatever a runner raises when a worker fails becomes
one `GFRNetError` naming the output folder. Steps emit `(kind, value)` items (`select`,
`keep`) and log their progress per worker process (`Progress`).
"""

from __future__ import annotations

import logging
import time

from gfrnet_tf.errors import BadConfigError, GFRNetError, first_line


def beam_module():
    """`apache_beam`, or one line saying how to install it."""
    try:
        import apache_beam
    except ImportError:
        raise BadConfigError("apache_beam", "not installed: pip install gfrnet_tf[beam]")
    return apache_beam


def pipeline_options(beam_args: list[str]):
    """Beam's `PipelineOptions` of `beam_args`; by default the DirectRunner over all cores."""
    beam_module()
    from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

    options = PipelineOptions(beam_args)
    if options.view_as(StandardOptions).runner is None and not any(
        arg.startswith("--direct_running_mode") for arg in beam_args
    ):
        direct = options.view_as(DirectOptions)
        direct.direct_running_mode, direct.direct_num_workers = "multi_processing", 0
    return options


def run_to_completion(pipeline, output: str) -> None:
    """Runs `pipeline` and waits for it; a failure is a `GFRNetError` naming `output`.

    A worker's failure (disk full, a runner's own error) arrives as whatever the runner
    raises; the pipeline's last step, which marks the output complete, has then not run.
    """
    try:
        pipeline.run().wait_until_finish()
    except Exception as error:
        raise GFRNetError(output, f"the pipeline failed: {first_line(error)}") from error


def select(item, kind):
    """The value of every `(kind, value)` item of that kind.

    The pipelines' steps emit `(kind, value)` items instead of tagged outputs, which the
    Dask runner mixes into the main output."""
    if item[0] == kind:
        yield item[1]


def keep(item, kinds):
    """The `(kind, value)` items of the given kinds, unchanged."""
    if item[0] in kinds:
        yield item


class Progress:
    """A log line every `every` photos per worker process (the run's counts come at the end)."""

    def __init__(self, command: str, every: int = 500):
        self.command, self.every, self.seen, self.start = command, every, 0, time.monotonic()

    def tick(self):
        self.seen += 1
        if self.seen % self.every == 0:
            rate = self.seen / (time.monotonic() - self.start)
            logging.info("%s worker: %d photos, %.1f photos/s", self.command, self.seen, rate)


class _NoBeamTracebacks(logging.Filter):
    """Beam logs a failing step's traceback before re-raising the error, which the command
    then prints as one line."""

    def filter(self, record):
        return not (record.name.startswith("apache_beam") and record.exc_info)


def quiet_beam_logs() -> None:
    """Beam's warnings only, without tracebacks (for a command without `--debug`)."""
    logging.basicConfig()  # the stderr handler Beam's first log line would create
    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_NoBeamTracebacks())
