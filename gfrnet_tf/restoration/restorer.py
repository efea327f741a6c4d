"""One small interface over every form a trained model takes.

`load_restorer(path)` accepts whatever `gfrnet_tf.loading.load_trained` does (a workdir,
checkpoint or `.keras` file, a SavedModel directory or TF Serving model folder, a
`.tflite` file) and returns a callable mapping uint8 degraded and guide batches to uint8
restored and warped-guide batches; a Keras model computes under the given dtype `policy`
(`gfrnet_tf.precision`). uint8 at this edge keeps the backends exchangeable:
a user's photos are uint8, and so is the SavedModel's serving signature.
The flow `Phi` is returned when the backend exposes it (Keras always; exported models
if they have a "flow" output, as `gfrnet-export`'s do), for the evaluation's alignment measures.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from gfrnet_tf.data.images import to_model_range, to_uint8
from gfrnet_tf.errors import BadModelFileError, first_line
from gfrnet_tf.export.contract import OUTPUTS
from gfrnet_tf.export.tflite import run_tflite
from gfrnet_tf.loading import TrainedModel, load_trained
from gfrnet_tf.precision import FLOAT32


@dataclasses.dataclass
class Restoration:
    """uint8 `[B, H, W, 3]` results; `flow` is `[B, H, W, 2]` normalised, or None."""

    restored: np.ndarray
    warped_guide: np.ndarray
    flow: np.ndarray | None = None


class Restorer:
    """Runs a model on uint8 batches; a model that cannot run on them is a `BadModelFileError`.

    `image_size` is the size the model was made for: exports require it; a Keras model
    takes any suitable size (None when nothing records one, as for a `.keras` file).
    `config` is the training config where the artefact keeps one (checkpoints), else None.
    """

    def __init__(self, trained: TrainedModel):
        self.source = trained.source
        self.image_size = trained.image_size
        self.config = trained.config  # the training config, when the artefact has one

    def __call__(self, degraded: np.ndarray, guide: np.ndarray) -> Restoration:
        try:
            return self._run(degraded, guide)
        # e.g. an export for another image size, or a size the network cannot halve enough.
        except (tf.errors.OpError, ValueError) as error:
            size = "x".join(str(n) for n in np.shape(degraded)[1:3])
            raise BadModelFileError(
                self.source, f"cannot run on {size} images: {_run_problem(error)}"
            ) from error

    def _run(self, degraded: np.ndarray, guide: np.ndarray) -> Restoration:
        raise NotImplementedError


class KerasRestorer(Restorer):
    """A `GFRNet` in memory (from a checkpoint or `.keras` file); any suitable image size."""

    def __init__(self, trained: TrainedModel):
        super().__init__(trained)
        model = self.model = trained.model
        self._infer = tf.function(
            lambda inputs: model(inputs, training=False), reduce_retracing=True
        )

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

    def __init__(self, trained: TrainedModel):
        super().__init__(trained)
        self._loaded = trained.model  # kept alive: the signature needs it
        self._signature = self._loaded.signatures["serving_default"]

    def _run(self, degraded: np.ndarray, guide: np.ndarray) -> Restoration:
        outputs = self._signature(degraded=tf.constant(degraded), guide=tf.constant(guide))
        flow = outputs.get("flow")
        return Restoration(
            outputs["restored"].numpy(),
            outputs["warped_guide"].numpy(),
            None if flow is None else flow.numpy(),
        )


class TFLiteRestorer(Restorer):
    """A batch-1 `.tflite` file from `gfrnet-export` run with LiteRT, one image at a time.

    Its float `[-1, 1]` interface is the Keras model's. Images go through one by one
    because XNNPACK cannot resize the converted graph to another batch size.
    """

    def __init__(self, trained: TrainedModel):
        super().__init__(trained)
        self._interpreter = trained.model

    def _run(self, degraded: np.ndarray, guide: np.ndarray) -> Restoration:
        singles = [
            run_tflite(self._interpreter, to_model_range(d[None]), to_model_range(g[None]))
            for d, g in zip(degraded, guide)
        ]
        restored, warped, flow = (np.concatenate([s[name] for s in singles]) for name in OUTPUTS)
        return Restoration(to_uint8(restored).numpy(), to_uint8(warped).numpy(), flow)


BACKENDS = {"keras": KerasRestorer, "savedmodel": SavedModelRestorer, "tflite": TFLiteRestorer}


def load_restorer(path, policy=FLOAT32) -> Restorer:
    """The backend for what `path` is; `BadModelFileError` if none can use it."""
    trained = load_trained(path, policy)
    return BACKENDS[trained.format](trained)


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
