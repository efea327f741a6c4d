"""Running one of the project's Beam pipelines from a command: options, runner, failures.

Shared by `gfrnet-prepare` and `gfrnet-restore --runner`: Beam is an optional extra (one
line if missing); without `--runner` (or `--direct_running_mode`) the DirectRunner runs
one worker process per local core; whatever a runner raises when a worker fails becomes
one `GFRNetError` naming the output folder.
"""

from __future__ import annotations

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
