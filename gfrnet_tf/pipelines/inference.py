"""RunInference over any trained GFRNet: a Beam `ModelHandler` of the project's own.

Beam's `TFModelHandlerTensor`/`Numpy` load with `tf.keras.models.load_model`, which refuses
a Keras 3 SavedModel (apache/beam#30616), and feed one tensor; GFRNet takes two (the
degraded face and its guide). `RestorerHandler` wraps `restoration.restorer.load_restorer`
instead, the one uint8 interface over every artefact (checkpoint or `.keras` file, the
exported SavedModel's `serving_default` signature, a `.tflite` file), so a face restored
on a Beam worker goes through exactly the code `gfrnet-restore` runs on one machine.

- An example is a `(degraded, guide)` pair of uint8 `[S, S, 3]` crops; its prediction a
  `PredictionResult` whose `inference` is that face's `Restoration` (no batch axis). Wrap
  the handler in `KeyedModelHandler` to carry `(photo, face)` keys through.
- One model per worker process: `load_model` is cached per process and path. Beam's
  `Shared` handle already keeps one per DoFn instance, but the Dask runner builds its DoFns
  again for every partition, and a SavedModel takes seconds to load. Sharing one model
  across a machine's processes (`large_model`, `model_copies`) proxies every batch through
  another process; a GFRNet (~200 MB) fits once per process, so it is not used.
- Batches: `batch_size` bounds `BatchElements` for a caller that lets RunInference batch.
  The archive pipeline batches itself (`with_no_batching`): the Dask runner drops whatever
  a DoFn emits from `finish_bundle`, which is where `BatchElements` emits each bundle's
  last batch (measured: 10 elements in batches of 4 came out as 8). A face's bytes do not
  depend on its batch (measured for all three backends, docs/ARCHIVE.md), so batch
  composition only changes speed.
"""

from __future__ import annotations

import functools
from typing import Any, Iterable, Sequence

import numpy as np
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from gfrnet_tf.precision import FLOAT32

DEFAULT_BATCH_SIZE = 8


@functools.cache
def process_restorer(model_path: str, policy: str = FLOAT32):
    """The restorer of `model_path` computing under `policy`, loaded once per worker process."""
    from gfrnet_tf.restoration.restorer import load_restorer

    return load_restorer(model_path, policy)


class RestorerHandler(ModelHandler):
    """`(degraded, guide)` uint8 crop pairs -> `PredictionResult`s holding a `Restoration`.

    `model_path`: anything `load_restorer` takes (a string: the handler is pickled to the
    workers and loads the model there); `policy`: the dtype policy a checkpoint or `.keras`
    model computes in (`gfrnet_tf.precision`).
    """

    def __init__(
        self, model_path: str, batch_size: int = DEFAULT_BATCH_SIZE, policy: str = FLOAT32
    ):
        super().__init__(min_batch_size=1, max_batch_size=batch_size)
        self.model_path = str(model_path)
        self.batch_size = batch_size
        self.policy = policy

    def load_model(self):
        return process_restorer(self.model_path, self.policy)

    def run_inference(
        self,
        batch: Sequence[tuple[np.ndarray, np.ndarray]],
        model,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[PredictionResult]:
        from gfrnet_tf.restoration.restorer import Restoration

        degraded = np.stack([pair[0] for pair in batch])
        guide = np.stack([pair[1] for pair in batch])
        result = model(degraded, guide)
        for i, pair in enumerate(batch):
            flow = None if result.flow is None else result.flow[i]
            yield PredictionResult(
                pair,
                Restoration(result.restored[i], result.warped_guide[i], flow),
                self.model_path,
            )

    def get_num_bytes(self, batch: Sequence[tuple[np.ndarray, np.ndarray]]) -> int:
        """The crops' bytes (the default pickles the whole batch to measure it)."""
        return sum(pair[0].nbytes + pair[1].nbytes for pair in batch)

    def get_metrics_namespace(self) -> str:
        return "gfrnet_restore"
