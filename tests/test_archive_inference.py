"""RunInference with the project's own model handler, over every model backend.

A face's restored bytes must not depend on the faces that share its model batch, or on the
batch's size or order: that is what lets the archive pipeline batch faces from any photos
and still write the bytes `gfrnet-restore` writes on one machine (docs/PEOPLE.md, "Same
bytes").
"""

import numpy as np
import pytest

beam = pytest.importorskip("apache_beam")
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference  # noqa: E402
from apache_beam.options.pipeline_options import PipelineOptions  # noqa: E402
from apache_beam.testing.util import assert_that  # noqa: E402

from gfrnet_tf.export import export_savedmodel  # noqa: E402
from gfrnet_tf.export.tflite import convert_to_tflite  # noqa: E402
from gfrnet_tf.pipelines import inference  # noqa: E402
from gfrnet_tf.restoration.restorer import load_restorer  # noqa: E402

SIZE = 32  # conftest's `tiny_model`
FACES = 7  # more than one batch of 3, not a multiple of it


@pytest.fixture(scope="module")
def model_files(tiny_model, tmp_path_factory):
    """The tiny model as each artefact `gfrnet-restore` takes: `{backend: path}`."""
    model, keras_path = tiny_model
    folder = tmp_path_factory.mktemp("backends")
    tflite = folder / "tiny.tflite"
    tflite.write_bytes(convert_to_tflite(model, SIZE, "fp32"))
    return {
        "keras": str(keras_path),
        "savedmodel": str(export_savedmodel(model, folder / "served", SIZE)),
        "tflite": str(tflite),
    }


def _faces():
    """Photo-like (smooth) uint8 crops: random noise would hide rounding at .5 levels."""
    import cv2

    rng = np.random.default_rng(1)

    def crop():
        coarse = rng.integers(0, 256, (SIZE // 4, SIZE // 4, 3), dtype=np.uint8)
        return cv2.resize(coarse, (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)

    return [(crop(), crop()) for _ in range(FACES)]


def _restored(handler, model, faces):
    return [result.inference.restored for result in handler.run_inference(faces, model)]


@pytest.mark.parametrize("backend", ["keras", "savedmodel", "tflite"])
def test_a_faces_bytes_do_not_depend_on_its_batch(model_files, backend):
    handler = inference.RestorerHandler(model_files[backend])
    model = handler.load_model()
    faces = _faces()
    alone = [_restored(handler, model, [face])[0] for face in faces]
    together = _restored(handler, model, faces)
    order = np.random.default_rng(2).permutation(FACES)
    shuffled = _restored(handler, model, [faces[i] for i in order])
    in_threes = [r for s in range(0, FACES, 3) for r in _restored(handler, model, faces[s : s + 3])]
    for i in range(FACES):
        assert alone[i].tobytes() == together[i].tobytes() == in_threes[i].tobytes(), i
        assert shuffled[list(order).index(i)].tobytes() == alone[i].tobytes(), i
    # ... and they are the one-machine restorer's bytes.
    direct = load_restorer(model_files[backend])(faces[0][0][None], faces[0][1][None])
    assert direct.restored[0].tobytes() == alone[0].tobytes()
    assert len({r.tobytes() for r in alone}) == FACES  # the faces differ: not a constant


def test_the_model_is_loaded_once_per_process(model_files):
    first = inference.RestorerHandler(model_files["savedmodel"]).load_model()
    # A new handler, as the Dask runner unpickles one per partition: the same model.
    assert inference.RestorerHandler(model_files["savedmodel"]).load_model() is first


def test_keyed_run_inference_brings_each_face_back_to_its_key(model_files):
    """Keyed faces through RunInference in a Beam pipeline, batched by the pipeline (the
    archive's way: no BatchElements) and by Beam's BatchElements."""
    handler = inference.RestorerHandler(model_files["tflite"], batch_size=3)
    model = handler.load_model()
    faces = _faces()
    expected = {
        ("album/photo.jpg", k): restored.tobytes()
        for k, restored in enumerate(_restored(handler, model, faces))
    }
    keyed = [(("album/photo.jpg", k), face) for k, face in enumerate(faces)]

    def check(results):
        got = {key: result.inference.restored.tobytes() for key, result in results}
        assert got == expected
        for key, result in results:
            assert result.example[0].tobytes() == faces[key[1]][0].tobytes()

    options = PipelineOptions(["--direct_running_mode=in_memory"])
    with beam.Pipeline(options=options) as pipeline:
        batches = pipeline | "Batches" >> beam.Create([keyed[:3], keyed[3:6], keyed[6:]])
        prebatched = batches | "Prebatched" >> RunInference(
            KeyedModelHandler(handler).with_no_batching()
        )
        assert_that(prebatched, check, label="CheckPrebatched")
        single = pipeline | "Faces" >> beam.Create(keyed)
        by_beam = single | "BatchedByBeam" >> RunInference(KeyedModelHandler(handler))
        assert_that(by_beam, check, label="CheckBatchedByBeam")
