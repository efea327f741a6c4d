"""One small interface over every form a trained model takes.

`load_restorer(path)` accepts a training checkpoint or `.keras` file, a SavedModel
directory (also TF Serving's `NAME/<version>/` layout: the highest version is used) or a
`.tflite` file, and returns a callable mapping uint8 degraded and guide batches to uint8
restored and warped-guide batches. uint8 at this edge keeps the backends exchangeable:
a user's photos are uint8, and so is the SavedModel's serving signature.
The flow `Phi` is returned when the backend exposes it (Keras always; exported models
if they have a "flow" output, as `gfrnet-export`'s do), for the evaluation's alignment measures.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import tensorflow as tf

from gfrnet_tf.data.images import to_model_range, to_uint8
from gfrnet_tf.errors import BadModelFileError, first_line
from gfrnet_tf.export import load_model_for_export
from gfrnet_tf.export.savedmodel import OUTPUTS, recorded_image_size
from gfrnet_tf.export.tflite import litert_interpreter, run_tflite


@dataclasses.dataclass
class Restoration:
    """uint8 `[B, H, W, 3]` results; `flow` is `[B, H, W, 2]` normalised, or None."""

    restored: np.ndarray
    warped_guide: np.ndarray
    flow: np.ndarray | None = None


class Restorer:
    """Runs a model on uint8 batches; a model that cannot run on them is a `BadModelFileError`.

    `image_size` is the size the model requires, or None when it takes any suitable size.
    """

    image_size = None

    def __init__(self, source):
        self.source = source

    def __call__(self, degraded: np.ndarray, guide: np.ndarray) -> Restoration:
        try:
            return self._run(degraded, guide)
        # e.g. an export for another image size, or a size the network cannot halve enough.
        except (tf.errors.OpError, ValueError) as error:
            size = "x".join(str(n) for n in np.shape(degraded)[1:3])
            raise BadModelFileError(
                self.source, f"cannot run on {size} images: {_run_problem(error)}") from error

    def _run(self, degraded: np.ndarray, guide: np.ndarray) -> Restoration:
        raise NotImplementedError


class KerasRestorer(Restorer):
    """A `GFRNet` in memory (from a checkpoint or `.keras` file); any suitable image size."""

    def __init__(self, model, source):
        super().__init__(source)
        self.model = model
        self._infer = tf.function(lambda inputs: model(inputs, training=False), reduce_retracing=True)

    def _run(self, degraded: np.ndarray, guide: np.ndarray) -> Restoration:
        outputs = self._infer(
            {"degraded": to_model_range(degraded), "guide": to_model_range(guide)}
        )
        return Restoration(
            restored=to_uint8(outputs["restored"]).numpy(),
            warped_guide=to_uint8(outputs["warped_guide"]).numpy(),
            flow=outputs["flow"].numpy(),
        )


class SavedModelRestorer(Restorer):
    """The exported `serving_default` signature (uint8 in, uint8 out)."""

    def __init__(self, path: Path):
        super().__init__(path)
        self._loaded = tf.saved_model.load(str(path))  # kept alive: the signature needs it
        self._signature = self._loaded.signatures["serving_default"]
        # `gfrnet-export`'s signature has dynamic H, W (it checks the size itself) and
        # records the size apart; another export may fix it in the signature instead.
        self.image_size = recorded_image_size(self._loaded) or \
            self._signature.structured_input_signature[1]["degraded"].shape[1]

    def _run(self, degraded: np.ndarray, guide: np.ndarray) -> Restoration:
        outputs = self._signature(degraded=tf.constant(degraded), guide=tf.constant(guide))
        flow = outputs.get("flow")
        return Restoration(outputs["restored"].numpy(), outputs["warped_guide"].numpy(),
                           None if flow is None else flow.numpy())


class TFLiteRestorer(Restorer):
    """A batch-1 `.tflite` file from `gfrnet-export` run with LiteRT, one image at a time.

    Its float `[-1, 1]` interface is the Keras model's. Images go through one by one
    because XNNPACK cannot resize the converted graph to another batch size.
    """

    def __init__(self, path: Path):
        super().__init__(path)
        self._interpreter = litert_interpreter(path.read_bytes())
        shape = self._interpreter.get_signature_runner().get_input_details()["degraded"]["shape"]
        if shape[0] != 1:
            raise BadModelFileError(path, f"converted for batch {shape[0]}; export it with batch 1")
        self.image_size = int(shape[1])

    def _run(self, degraded: np.ndarray, guide: np.ndarray) -> Restoration:
        singles = [
            run_tflite(self._interpreter, to_model_range(d[None]), to_model_range(g[None]))
            for d, g in zip(degraded, guide)
        ]
        restored, warped, flow = (np.concatenate([s[name] for s in singles]) for name in OUTPUTS)
        return Restoration(to_uint8(restored).numpy(), to_uint8(warped).numpy(), flow)


def load_restorer(path):
    """Picks the backend from what `path` is; `BadModelFileError` if none can use it."""
    path = Path(path)
    if not path.exists():
        raise BadModelFileError(path, "no such file or directory")
    try:
        if path.suffix == ".tflite":
            return TFLiteRestorer(path)
        saved_model = _saved_model_dir(path)
        if saved_model is not None:
            return SavedModelRestorer(saved_model)
    except BadModelFileError:
        raise
    # TensorFlow and LiteRT raise many types for a bad file; all mean the same to a user.
    except Exception as error:  # noqa: BLE001
        raise BadModelFileError(path, f"cannot load the model: {first_line(error)}") from error
    return KerasRestorer(load_model_for_export(path), path)


def _run_problem(error: Exception) -> str:
    """The informative line of a failed run: TF graph errors start with boilerplate.

    An in-graph assertion (the SavedModel's size check) reads `assertion failed: [msg]
    [Condition ...] ...`; its message is what a user needs.
    """
    if isinstance(error, tf.errors.OpError):
        for line in error.message.splitlines():
            if line.startswith("assertion failed: ["):
                return line.removeprefix("assertion failed: [").split("] [Condition")[0]
    return first_line(error)


def _saved_model_dir(path: Path) -> Path | None:
    """`path` itself, or its highest numeric version folder, if it holds a SavedModel."""
    if not path.is_dir():
        return None
    if (path / "saved_model.pb").is_file():
        return path
    versions = [p for p in path.iterdir() if p.name.isdigit() and (p / "saved_model.pb").is_file()]
    return max(versions, key=lambda p: int(p.name)) if versions else None

