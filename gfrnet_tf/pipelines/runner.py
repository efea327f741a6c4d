"""Running one of the project's Beam pipelines from a command: options, runner, failures.

Shared by `gfrnet-prepare` and `gfrnet-restore --runner`: Beam is an optional extra (one
line if missing); without `--runner` (or `--direct_running_mode`) the DirectRunner runs
one worker process per local core; whatever a runner raises when a worker fails becomes
one `GFRNetError` naming the output folder. Steps emit `(kind, value)` items (`select`,
`keep`) and log their progress per worker process (`Progress`).
"""

from __future__ import annotations

import logging
import re
import threading
import time

from gfrnet_tf.errors import GFRNetError, first_line, optional_dependency

# The name `DaskRunner` alone is not registered with Beam: its full path is.
DASK_RUNNER = "apache_beam.runners.dask.dask_runner.DaskRunner"


def beam_module():
    """`apache_beam`, or one line saying how to install it."""
    with optional_dependency():
        import apache_beam
    return apache_beam


def new_pipeline(beam_args: list[str]):
    """A `beam.Pipeline` with the options `beam_args`; by default the DirectRunner over all
    cores. A runner's own missing package (e.g. Dask) is one line naming `--runner`."""
    beam = beam_module()
    from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

    options = PipelineOptions(beam_args)
    if options.view_as(StandardOptions).runner is None and not any(
        arg.startswith("--direct_running_mode") for arg in beam_args
    ):
        direct = options.view_as(DirectOptions)
        direct.direct_running_mode, direct.direct_num_workers = "multi_processing", 0
    with optional_dependency("--runner"):
        return beam.Pipeline(options=options)


def run_to_completion(pipeline, output: str) -> None:
    """Runs `pipeline` and waits for it; a failure is a `GFRNetError` naming `output`.

    A worker's failure (disk full, a runner's own error) arrives as whatever the runner
    raises; the pipeline's last step, which marks the output complete, has then not run.
    """
    del _THREAD_FAILURES[:]
    try:
        pipeline.run().wait_until_finish()
    except Exception as error:
        problems = dict.fromkeys([failure_line(error), *_THREAD_FAILURES])
        raise GFRNetError(output, f"the pipeline failed: {'; '.join(problems)}") from error


_ERROR_LINE = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception|Exit)): (.+)$")


def failure_line(error: Exception) -> str:
    """The line of a runner's error that says what failed. Runners that run steps in other
    processes raise an error whose text is the worker's traceback: its last exception line
    is the one (a `gfrnet_tf` error without its class, as commands print it)."""
    lines = [_ERROR_LINE.match(line) for line in str(error).splitlines()]
    found = [match for match in lines if match]
    if not found:
        return first_line(error)
    name, _, message = found[-1].groups()
    return message if name.startswith("gfrnet_tf.") else f"{name.rsplit('.', 1)[-1]}: {message}"


def select(item, kind):
    """The value of every `(kind, value)` item of that kind.

    The pipelines' steps emit `(kind, value)` items instead of tagged outputs, which the
    Dask runner mixes into the main output."""
    if item[0] == kind:
        yield item[1]


def under_one_key(item):
    """`("all", item)`: every item meets every other in one GroupByKey, the pipeline's
    last step (the Dask runner computes only what flows into it)."""
    return "all", item


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
    """Beam logs a failing step's traceback (its own, or a worker's inside the message)
    before re-raising the error, which the command then prints as one line."""

    def filter(self, record):
        return not (
            record.name.startswith("apache_beam")
            and (record.exc_info or "Traceback (most recent call last)" in record.getMessage())
        )


# What the runner's own threads raised during `run_to_completion` (e.g. the DirectRunner's
# "Worker subprocess exited with return code 137" when a worker process is killed).
_THREAD_FAILURES: list[str] = []


def _thread_failure(hook_args) -> None:
    if str(hook_args.exc_value):  # gRPC's errors of a closed channel say nothing
        _THREAD_FAILURES.append(first_line(hook_args.exc_value))


# Worker processes log Beam's messages (and their harness's, `__main__`) at CRITICAL only:
# their failures reach the command as its one error line; its progress lines stay.
QUIET_WORKERS = [
    '--sdk_harness_log_level_overrides={"apache_beam": "CRITICAL", "__main__": "CRITICAL"}'
]


def quiet_beam_logs() -> None:
    """Beam's warnings only, without tracebacks, and a runner thread's failure kept for the
    error line instead of printed with its traceback (for a command without `--debug`;
    `QUIET_WORKERS` does the same on the workers)."""
    logging.basicConfig()  # the stderr handler Beam's first log line would create
    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_NoBeamTracebacks())
    threading.excepthook = _thread_failure
