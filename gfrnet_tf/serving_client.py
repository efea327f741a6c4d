"""Client for GFRNet on TF Serving: REST JSON and gRPC `PredictRequest`s, and their answers.

Requests carry uint8 `[B, S, S, 3]` `degraded` and `guide` batches to the exported
`serving_default` signature, or encoded JPEG/PNG files to `serve_encoded` (base64 in
REST). Everything is checked here, before sending: a wrong dtype or shape is a
`ValueError` naming the input, not a server round trip ending in a graph assertion.
gRPC needs the `serving` extra (tensorflow-serving-api); it is imported only when used.

    request = rest_request(degraded, guide)
    outputs = predict_rest(rest_url("localhost:8501", "gfrnet"), request)
    outputs["restored"]  # uint8 [B, S, S, 3]; "flow" is float32 [B, S, S, 2]
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

import numpy as np

from gfrnet_tf.errors import GFRNetError, optional_dependency

DEFAULT_SIGNATURE = "serving_default"
ENCODED_SIGNATURE = "serve_encoded"
INPUTS = ("degraded", "guide")
LAYOUTS = ("instances", "inputs")
# Output dtypes JSON does not carry: the images are uint8, the flow is not.
FLOAT_OUTPUTS = ("flow",)


class ServingError(GFRNetError):
    """The server refused or failed a request; `problem` is its error message."""

    reason = "serving"


def check_images(degraded, guide, image_size: int | None = None):
    """Returns both batches as uint8 arrays, or raises `ValueError` saying what is wrong."""
    arrays = {"degraded": np.asarray(degraded), "guide": np.asarray(guide)}
    for name, array in arrays.items():
        if array.dtype != np.uint8:
            raise ValueError(f"{name} must be uint8 RGB, got dtype {array.dtype}")
        if array.ndim != 4 or array.shape[-1] != 3:
            raise ValueError(f"{name} must have shape [batch, height, width, 3], got {array.shape}")
        if image_size is not None and array.shape[1:3] != (image_size, image_size):
            raise ValueError(f"{name} must be {image_size}x{image_size}, got {array.shape[1:3]}")
    if arrays["degraded"].shape != arrays["guide"].shape:
        raise ValueError(
            f"degraded {arrays['degraded'].shape} and guide {arrays['guide'].shape} differ in shape"
        )
    return arrays["degraded"], arrays["guide"]


def check_encoded(degraded, guide):
    """Returns both lists of encoded files as `bytes`, or raises `ValueError`."""
    lists = {"degraded": list(degraded), "guide": list(guide)}
    for name, files in lists.items():
        if not all(isinstance(data, bytes) and data for data in files):
            raise ValueError(f"{name} must be a list of non-empty encoded JPEG/PNG bytes")
    if len(lists["degraded"]) != len(lists["guide"]):
        raise ValueError(
            f"{len(lists['degraded'])} degraded but {len(lists['guide'])} guide images"
        )
    return lists["degraded"], lists["guide"]


def rest_request(degraded, guide, image_size: int | None = None, layout: str = "instances") -> dict:
    """The JSON body for `serving_default` (`layout`: "instances" rows or "inputs" columns)."""
    degraded, guide = check_images(degraded, guide, image_size)
    return _rest_body(
        DEFAULT_SIGNATURE, {"degraded": degraded.tolist(), "guide": guide.tolist()}, layout
    )


def rest_request_encoded(degraded, guide, layout: str = "instances") -> dict:
    """The JSON body for `serve_encoded`: lists of JPEG/PNG file bytes, sent as base64."""
    degraded, guide = check_encoded(degraded, guide)
    columns = {
        name: [{"b64": base64.b64encode(data).decode("ascii")} for data in files]
        for name, files in (("degraded", degraded), ("guide", guide))
    }
    return _rest_body(ENCODED_SIGNATURE, columns, layout)


def _rest_body(signature: str, columns: dict, layout: str) -> dict:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if layout == "inputs":
        return {"signature_name": signature, "inputs": columns}
    rows = [dict(zip(columns, values)) for values in zip(*columns.values())]
    return {"signature_name": signature, "instances": rows}


def parse_rest_response(body) -> dict:
    """`{"predictions": [...]}` or `{"outputs": {...}}` -> arrays (images uint8, flow
    float32); `{"error"}` raises."""
    if isinstance(body, (str, bytes)):
        body = json.loads(body)
    if "error" in body:
        raise ServingError("server", body["error"])
    if "outputs" in body:
        columns = body["outputs"]
    else:
        rows = body["predictions"]
        columns = {name: [row[name] for row in rows] for name in rows[0]}
    return {
        name: np.asarray(value, np.float32 if name in FLOAT_OUTPUTS else np.uint8)
        for name, value in columns.items()
    }


def rest_url(host: str, model_name: str, version: int | None = None) -> str:
    """TF Serving's predict endpoint, e.g. `http://localhost:8501/v1/models/gfrnet:predict`."""
    versioned = f"/versions/{version}" if version is not None else ""
    return f"http://{host}/v1/models/{model_name}{versioned}:predict"


def predict_rest(url: str, request: dict, timeout: float = 60.0) -> dict:
    """POSTs `request` and returns the parsed outputs; a refusal raises `ServingError`."""
    data = json.dumps(request).encode("utf-8")
    post = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(post, timeout=timeout) as response:
            return parse_rest_response(response.read())
    except urllib.error.HTTPError as error:
        # TF Serving puts the graph's assertion message into the body: pass it on.
        try:
            message = json.loads(error.read()).get("error", str(error))
        except ValueError:
            message = str(error)
        raise ServingError(url, message) from None
    except urllib.error.URLError as error:
        raise ServingError(url, f"cannot reach the server: {error.reason}") from None


def grpc_request(
    degraded, guide, model_name: str, version: int | None = None, image_size: int | None = None
):
    """A `PredictRequest` for `serving_default` with uint8 tensors."""
    degraded, guide = check_images(degraded, guide, image_size)
    return _grpc_request(
        model_name, DEFAULT_SIGNATURE, version, {"degraded": degraded, "guide": guide}
    )


def grpc_request_encoded(degraded, guide, model_name: str, version: int | None = None):
    """A `PredictRequest` for `serve_encoded` with string tensors of file bytes."""
    degraded, guide = check_encoded(degraded, guide)
    return _grpc_request(
        model_name,
        ENCODED_SIGNATURE,
        version,
        {"degraded": np.array(degraded, object), "guide": np.array(guide, object)},
    )


def _grpc_request(model_name, signature, version, tensors):
    import tensorflow as tf

    with optional_dependency():
        from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = int(version)
    for name, array in tensors.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(array))
    return request


def parse_grpc_response(response) -> dict:
    """`PredictResponse` -> `{name: array}` (the proto carries each output's dtype)."""
    import tensorflow as tf

    return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}


def predict_grpc(target: str, request, timeout: float = 60.0) -> dict:
    """Sends `request` to `target` (e.g. "localhost:8500"); a refusal raises `ServingError`."""
    import grpc

    with optional_dependency():
        from tensorflow_serving.apis import prediction_service_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            return parse_grpc_response(stub.Predict(request, timeout=timeout))
        except grpc.RpcError as error:
            raise ServingError(target, f"{error.code().name}: {error.details()}") from None
