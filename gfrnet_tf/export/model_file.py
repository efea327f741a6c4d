"""Loading the model to export from a user-supplied `.keras` file, safely."""

from __future__ import annotations

import zipfile
from pathlib import Path

import keras

from gfrnet_tf.errors import BadModelFileError


def load_model_for_export(path) -> keras.Model:
    """Loads a `.keras` model file (e.g. a training checkpoint) with Keras safe mode.

    Safe mode refuses pickled lambdas, so an untrusted file cannot run code on load. Any
    failure -- missing, not a zip, wrong contents, unknown classes -- becomes one
    `BadModelFileError` naming the file, never a Keras traceback.
    """
    path = Path(path)
    if not path.is_file():
        raise BadModelFileError(path, "no such file")
    if path.suffix != ".keras":
        raise BadModelFileError(path, "expected a .keras model file (keras.Model.save)")
    if not zipfile.is_zipfile(path):
        raise BadModelFileError(path, "not a .keras archive (it is not a zip file)")
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    # Keras raises ValueError, TypeError, KeyError, OSError... for the many ways a
    # file can be wrong; all of them mean the same thing to the user.
    except Exception as error:  # noqa: BLE001
        problem = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise BadModelFileError(path, f"cannot load the model: {problem}") from error
    return model
