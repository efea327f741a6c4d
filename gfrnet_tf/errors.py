"""One exception hierarchy for every command.

Each error knows the file (or record, or config key) it is about and says the problem in
one line, so the absl entry points can print `path: problem` instead of a traceback.
"""

from __future__ import annotations


def first_line(error: Exception) -> str:
    """The first line of `error`'s message (at most 200 characters), or its type name.

    Library errors (TF, Keras, h5py, LiteRT) are often many lines long; their first line is
    what a `source: problem` message needs.
    """
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:200]


class GFRNetError(Exception):
    """Base class: `GFRNetError(source, problem)` prints as `source: problem`."""

    reason = "error"

    def __init__(self, source, problem: str):
        self.source = str(source)
        self.problem = problem
        super().__init__(f"{self.source}: {problem}")


class BadImageError(GFRNetError):
    """An image file that cannot be decoded, is too large, too small or of a bad mode."""

    reason = "bad_image"


class BadVideoError(GFRNetError):
    """A video file that cannot be opened, decoded to its end or written."""

    reason = "bad_video"


class NoFaceError(GFRNetError):
    """An image in which the face detector found no usable face."""

    reason = "no_face"


class BadRecordError(GFRNetError):
    """A TFRecord shard or record that does not match the schema."""

    reason = "bad_record"


class BadModelFileError(GFRNetError):
    """A checkpoint, `.keras`, SavedModel, TFLite or weights file that cannot be used."""

    reason = "bad_model_file"


class BadConfigError(GFRNetError):
    """A configuration value or flag combination that cannot work."""

    reason = "bad_config"


class TrainingDivergedError(GFRNetError):
    """A loss became NaN or infinite; training stopped before saving the broken weights."""

    reason = "diverged"
