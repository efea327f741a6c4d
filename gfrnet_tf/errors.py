"""One exception hierarchy for every command.

Each error knows the file (or record, or config key) it is about and says the problem in
one line, so the absl entry points can print `path: problem` instead of a traceback.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import re

# What TF wraps around an op's own message: the function it ran in, the node that failed,
# the eager op (with an optional `name:` suffix). Nothing in them is about the user's file.
_TF_NOISE = re.compile(
    r"\{\{function_node [^}]*\}\}"
    r"|\[\[\{\{node [^}]*\}\}\]\]"
    r"|\[Op:[^\]]*\](?:\s*name:[^\n]*)?"
)
# A graph error opens with this line, then "Detected at node X defined at ...:" and the
# indented Python frames that built the node, then the op's message.
_GRAPH_ERROR = "Graph execution error:"
_DETECTED_AT = "Detected at node"


def strip_tf_noise(text: str) -> str:
    """`text` without TF's `{{function_node ...}}`, `[[{{node ...}}]]`, `[Op:...]` parts and
    the "Graph execution error: / Detected at node ..." preamble with its Python frames."""
    kept, in_frames = [], False
    for line in str(text).splitlines():
        if line.startswith(_DETECTED_AT):
            in_frames = True
            continue
        if in_frames and (not line.strip() or line[0].isspace()):
            continue
        in_frames = False
        line = " ".join(_TF_NOISE.sub(" ", line).split())
        if line and line != _GRAPH_ERROR:
            kept.append(line)
    return "\n".join(kept)


def first_line(error) -> str:
    """The first line of an error's message (or of a message string), without TF's noise
    (`strip_tf_noise`), at most 200 characters; the type name if nothing is left.

    Library errors (TF, Keras, h5py, LiteRT) are often many lines long; their first line is
    what a `source: problem` message needs.
    """
    if isinstance(error, BaseException):
        text = strip_tf_noise(getattr(error, "message", None) or str(error))
        return (text.splitlines() or [type(error).__name__])[0][:200]
    return (strip_tf_noise(error).splitlines() or ["unknown error"])[0][:200]


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


class BadOutputError(GFRNetError):
    """An output file or folder that cannot be written: a file where a folder should be,
    read-only, or a full disk."""

    reason = "bad_output"


class BadConfigError(GFRNetError):
    """A configuration value or flag combination that cannot work."""

    reason = "bad_config"


# The optional packages the library imports (by import name) and the `setup.cfg` extra that
# installs each; tests/test_optional_dependencies.py checks this against setup.cfg.
OPTIONAL_EXTRAS = {
    "ai_edge_litert": "litert",
    "apache_beam": "beam",
    "av": "video",
    "dask": "dask",
    "dlib": "landmarks",
    "face_recognition_models": "landmarks",
    "onnx": "onnx",
    "onnxruntime": "identity",
    "starlette": "web",
    "tensorflow_serving": "serving",
    "tf2onnx": "onnx",
    "torch": "convert",
    "uvicorn": "web",
}


def install_hint(extra: str) -> str:
    """How to add the optional extra `extra`, to the installed package and to a checkout."""
    return f'pip install "gfrnet_tf[{extra}]" (in a checkout: pip install -e ".[{extra}]")'


class MissingDependencyError(GFRNetError):
    """An optional package is not installed; the message names the extra that installs it
    (`install_hint`)."""

    reason = "missing_dependency"

    def __init__(self, package: str, source=None):
        self.package, self.extra = package, OPTIONAL_EXTRAS[package]
        install = install_hint(self.extra)
        if source is None:
            super().__init__(package, f"not installed: {install}")
        else:
            super().__init__(source, f"needs {package}, which is not installed: {install}")


@contextlib.contextmanager
def optional_dependency(source=None):
    """Turns an `ImportError` of an optional package (`OPTIONAL_EXTRAS`) inside the block into
    a `MissingDependencyError` about `source` (default: the package); any other `ImportError`
    goes on as it is.

    The failed import may be the block's own or one deep inside it (a Beam runner importing
    Dask, a module importing PyAV); a package may also re-raise it under its own message.
    """
    try:
        yield
    except ImportError as error:
        cause = error
        while isinstance(cause, ImportError):
            package = (cause.name or "").partition(".")[0]
            if package in OPTIONAL_EXTRAS:
                raise MissingDependencyError(package, source) from error
            cause = cause.__cause__ or cause.__context__
        raise


def is_real_number(value) -> bool:
    """A real number and not a bool (a config's True would otherwise pass as 1)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_non_negative(value, source: str, note: str = "") -> float:
    """`value` as a float if it is a finite real number >= 0, else `BadConfigError(source)`."""
    if not (is_real_number(value) and math.isfinite(value) and value >= 0):
        raise BadConfigError(source, f"must be a finite number >= 0{note}, got {value!r}")
    return float(value)


class TrainingDivergedError(GFRNetError):
    """A loss became NaN or infinite; training stopped before saving the broken weights."""

    reason = "diverged"
