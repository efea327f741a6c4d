"""ONNX export (optional format): the file runs in ONNX's reference evaluator like the
Keras model."""

import keras
import numpy as np
import pytest

from gfrnet_tf.export.onnx_export import export_onnx
from support import SHALLOW, built_gfrnet

pytest.importorskip("tf2onnx", reason="ONNX export is optional: pip install tf2onnx onnx")
reference = pytest.importorskip("onnx.reference")

SIZE = 32


def test_onnx_matches_keras(tmp_path):
    keras.utils.set_random_seed(6)
    model = built_gfrnet(SHALLOW, SIZE)
    path = export_onnx(model, tmp_path / "gfrnet.onnx", SIZE)
    assert [p.name for p in tmp_path.iterdir()] == ["gfrnet.onnx"]  # no temporary file left
    rng = np.random.default_rng(7)
    inputs = {
        name: rng.uniform(-1, 1, (2, SIZE, SIZE, 3)).astype("float32")
        for name in ("degraded", "guide")
    }
    session = reference.ReferenceEvaluator(str(path))
    names = [output.name for output in session.proto_.graph.output]
    got = dict(zip(names, session.run(None, inputs)))
    expected = model(inputs, training=False)
    for name in ("restored", "warped_guide", "flow"):
        np.testing.assert_allclose(got[name], expected[name], atol=1e-4, err_msg=name)
