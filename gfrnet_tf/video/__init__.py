"""Guided restoration of video clips: faces tracked, restored in batches as the clip streams.

`streaming.VideoRestorer` restores frames with a `PhotoRestorer`'s model and guides;
`clip.restore_clip` runs it on a file (PyAV: decode, encode, audio copied);
`gfrnet_tf.io.media.is_video_file` tells videos from photos. PyAV comes with the `video`
extra, so this package imports nothing itself; `clip_stages` is how a library run gets
the clip stages, with or without it.
"""

from gfrnet_tf.errors import MissingDependencyError, optional_dependency


def clip_stages(**settings):
    """`people.ClipStages(**settings)`, the `clips` of `restoration.library`'s runs; without
    PyAV, `NoClipStages` (each clip a problem row naming the `video` extra)."""
    try:
        with optional_dependency("clips"):
            from gfrnet_tf.video.people import ClipStages
    except MissingDependencyError as error:
        from gfrnet_tf.restoration.library import NoClipStages

        return NoClipStages(error.problem)
    return ClipStages(**settings)
