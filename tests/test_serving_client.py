"""The serving client against the exported SavedModel, with TF Serving's request handling emulated.

TF Serving cannot be installed here, so `serve_rest` / `serve_grpc` below do what its
predict handlers do (row/columnar JSON, `{"b64"}` strings, `PredictRequest` tensors ->
signature call -> `predictions`/`outputs`/`error`). The client's requests are executed
in a fresh process (this file run as a script) against the SavedModel on disk, and
through a local HTTP server for `predict_rest`; every answer must equal the Keras model's.
"""

import base64
import http.server
import json
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from gfrnet_tf import serving_client as client
from support import SHALLOW, run_checkout

SIZE = 32


def serve_rest(loaded, body):
    """TF Serving's REST predict: JSON body -> (HTTP status, JSON answer)."""
    signature = loaded.signatures[body.get("signature_name", "serving_default")]
    specs = signature.structured_input_signature[1]
    if "instances" in body:
        columns = {name: [row[name] for row in body["instances"]] for name in specs}
    else:
        columns = body["inputs"]
    tensors = {}
    for name, spec in specs.items():
        if spec.dtype == tf.string:
            tensors[name] = tf.constant([base64.b64decode(value["b64"]) for value in columns[name]])
        else:
            tensors[name] = tf.constant(np.asarray(columns[name], spec.dtype.as_numpy_dtype))
    try:
        outputs = {name: value.numpy() for name, value in signature(**tensors).items()}
    except tf.errors.InvalidArgumentError as error:
        return 400, {"error": error.message}
    if "instances" in body:
        batch = len(next(iter(outputs.values())))
        return 200, {
            "predictions": [
                {name: value[i].tolist() for name, value in outputs.items()} for i in range(batch)
            ]
        }
    return 200, {"outputs": {name: value.tolist() for name, value in outputs.items()}}


def serve_grpc(loaded, request):
    """TF Serving's gRPC Predict: `PredictRequest` -> `PredictResponse`."""
    from tensorflow_serving.apis import predict_pb2

    signature = loaded.signatures[request.model_spec.signature_name or "serving_default"]
    inputs = {name: tf.constant(tf.make_ndarray(proto)) for name, proto in request.inputs.items()}
    response = predict_pb2.PredictResponse()
    response.model_spec.CopyFrom(request.model_spec)
    for name, value in signature(**inputs).items():
        response.outputs[name].CopyFrom(tf.make_tensor_proto(value.numpy()))
    return response


def _serve_folder(model_dir, folder):
    """Fresh-process entry: answers every `*.json` / `*.pb` request in `folder`."""
    from tensorflow_serving.apis import predict_pb2

    loaded = tf.saved_model.load(model_dir)
    for path in sorted(Path(folder).glob("*.json")):
        _, answer = serve_rest(loaded, json.loads(path.read_text()))
        path.with_name(path.name + ".answer").write_text(json.dumps(answer))
    for path in sorted(Path(folder).glob("*.pb")):
        request = predict_pb2.PredictRequest.FromString(path.read_bytes())
        path.with_name(path.name + ".answer").write_bytes(
            serve_grpc(loaded, request).SerializeToString()
        )


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    import keras

    from gfrnet_tf.data.images import to_model_range, to_uint8
    from gfrnet_tf.export import export_savedmodel
    from gfrnet_tf.models.gfrnet import build_gfrnet

    keras.utils.set_random_seed(4)
    model = build_gfrnet(SHALLOW)
    rng = np.random.default_rng(5)
    degraded = rng.integers(0, 256, (2, SIZE, SIZE, 3), dtype=np.uint8)
    guide = rng.integers(0, 256, (2, SIZE, SIZE, 3), dtype=np.uint8)
    outputs = model({"degraded": to_model_range(degraded), "guide": to_model_range(guide)})
    expected = {name: to_uint8(outputs[name]).numpy() for name in ("restored", "warped_guide")}
    expected["flow"] = outputs["flow"].numpy()
    path = export_savedmodel(model, tmp_path_factory.mktemp("models") / "gfrnet", SIZE)
    return path, degraded, guide, expected


def _assert_outputs(answer, expected, where):
    """Images exactly equal to Keras'; the float flow to float precision, still float32."""
    assert set(answer) == set(expected), where
    for output, value in expected.items():
        if output == "flow":
            assert answer[output].dtype == np.float32, where
            np.testing.assert_allclose(answer[output], value, atol=1e-5, err_msg=f"{where}: flow")
        else:
            np.testing.assert_array_equal(answer[output], value, err_msg=f"{where}: {output}")


def _png_list(images):
    return [tf.io.encode_png(image).numpy() for image in images]


def test_requests_executed_in_a_fresh_process(exported, tmp_path):
    from tensorflow_serving.apis import predict_pb2

    path, degraded, guide, expected = exported
    requests = {
        "rows.json": client.rest_request(degraded, guide, image_size=SIZE),
        "columns.json": client.rest_request(degraded, guide, layout="inputs"),
        "encoded.json": client.rest_request_encoded(_png_list(degraded), _png_list(guide)),
        "undecodable.json": client.rest_request_encoded([b"garbage", b"x"], _png_list(guide)),
        "tensors.pb": client.grpc_request(degraded, guide, "gfrnet", version=1),
        "encoded.pb": client.grpc_request_encoded(_png_list(degraded), _png_list(guide), "gfrnet"),
    }
    for name, request in requests.items():
        data = json.dumps(request) if name.endswith(".json") else request.SerializeToString()
        (tmp_path / name).write_bytes(data.encode() if isinstance(data, str) else data)
    run_checkout(sys.executable, __file__, path, tmp_path, check=True, timeout=300)

    for name in ("rows", "columns", "encoded"):
        answer = client.parse_rest_response((tmp_path / f"{name}.json.answer").read_text())
        _assert_outputs(answer, expected, name)
    for name in ("tensors", "encoded"):
        response = predict_pb2.PredictResponse.FromString(
            (tmp_path / f"{name}.pb.answer").read_bytes()
        )
        _assert_outputs(client.parse_grpc_response(response), expected, f"gRPC {name}")
    with pytest.raises(client.ServingError, match="degraded: element.*0.*is not a JPEG or PNG"):
        client.parse_rest_response((tmp_path / "undecodable.json.answer").read_text())


def test_predict_rest_over_http(exported):
    path, degraded, guide, expected = exported
    loaded = tf.saved_model.load(str(path))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            status, answer = serve_rest(loaded, body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = client.rest_url(f"127.0.0.1:{server.server_port}", "gfrnet", version=1)
        answer = client.predict_rest(url, client.rest_request(degraded[:1], guide[:1]))
        np.testing.assert_array_equal(answer["restored"], expected["restored"][:1])
        bad = client.rest_request_encoded([b"\xff\xd8\xff-not-really-a-jpeg"], _png_list(guide[:1]))
        with pytest.raises(client.ServingError) as error:
            client.predict_rest(url, bad)
        assert error.value.source == url and "JPEG" in error.value.problem
    finally:
        server.shutdown()
        server.server_close()


def test_rest_url():
    assert (
        client.rest_url("localhost:8501", "gfrnet")
        == "http://localhost:8501/v1/models/gfrnet:predict"
    )
    assert client.rest_url("h:1", "m", 3) == "http://h:1/v1/models/m/versions/3:predict"


def test_rest_request_layouts():
    degraded = np.arange(2 * 2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 2, 3)
    guide = degraded[::-1].copy()
    rows = client.rest_request(degraded, guide)
    assert rows["signature_name"] == "serving_default"
    assert rows["instances"][1] == {"degraded": degraded[1].tolist(), "guide": guide[1].tolist()}
    columns = client.rest_request(degraded, guide, layout="inputs")
    assert columns["inputs"] == {"degraded": degraded.tolist(), "guide": guide.tolist()}
    encoded = client.rest_request_encoded([b"\x01\x02"], [b"\xff"])
    assert encoded == {
        "signature_name": "serve_encoded",
        "instances": [{"degraded": {"b64": "AQI="}, "guide": {"b64": "/w=="}}],
    }
    with pytest.raises(ValueError, match="layout"):
        client.rest_request(degraded, guide, layout="rows")


@pytest.mark.parametrize(
    "degraded,guide,message",
    [
        (
            np.zeros((1, 4, 4, 3), np.float32),
            np.zeros((1, 4, 4, 3), np.uint8),
            "degraded must be uint8",
        ),
        (
            np.zeros((4, 4, 3), np.uint8),
            np.zeros((4, 4, 3), np.uint8),
            "shape \\[batch, height, width, 3\\]",
        ),
        (
            np.zeros((1, 4, 4, 4), np.uint8),
            np.zeros((1, 4, 4, 4), np.uint8),
            "shape \\[batch, height, width, 3\\]",
        ),
        (np.zeros((1, 4, 4, 3), np.uint8), np.zeros((2, 4, 4, 3), np.uint8), "differ in shape"),
        (np.zeros((1, 8, 8, 3), np.uint8), np.zeros((1, 8, 8, 3), np.uint8), "must be 4x4"),
    ],
)
def test_bad_arrays_are_refused_before_sending(degraded, guide, message):
    with pytest.raises(ValueError, match=message):
        client.rest_request(degraded, guide, image_size=4)
    with pytest.raises(ValueError, match=message):
        client.grpc_request(degraded, guide, "gfrnet", image_size=4)


def test_bad_encoded_lists_are_refused():
    with pytest.raises(ValueError, match="non-empty encoded"):
        client.rest_request_encoded([b""], [b"x"])
    with pytest.raises(ValueError, match="non-empty encoded"):
        client.rest_request_encoded(["text.png"], [b"x"])
    with pytest.raises(ValueError, match="1 degraded but 2 guide"):
        client.grpc_request_encoded([b"x"], [b"x", b"y"], "gfrnet")


def test_parse_rest_response_forms():
    rows = {"predictions": [{"restored": [[[1, 2, 3]]]}, {"restored": [[[4, 5, 6]]]}]}
    parsed = client.parse_rest_response(json.dumps(rows))
    assert parsed["restored"].dtype == np.uint8 and parsed["restored"].shape == (2, 1, 1, 3)
    columns = client.parse_rest_response(
        {"outputs": {"restored": [[[[7, 8, 9]]]], "flow": [[[[-0.25, 0.5]]]]}}
    )
    np.testing.assert_array_equal(columns["restored"], [[[[7, 8, 9]]]])
    assert columns["flow"].dtype == np.float32  # not cut to uint8 like the images
    np.testing.assert_array_equal(columns["flow"], [[[[-0.25, 0.5]]]])
    with pytest.raises(client.ServingError, match="boom"):
        client.parse_rest_response({"error": "boom"})


if __name__ == "__main__":
    _serve_folder(sys.argv[1], sys.argv[2])
