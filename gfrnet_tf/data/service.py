"""`input.data_service`: the training input runs on remote tf.data service workers.

A GPU host with few cores hands the decode, guides and Eq. 4 to other machines: one
dispatcher (`start_dispatcher`, cheap, may run on the GPU host) and any number of workers
(`start_worker`); `gfrnet-data-service` runs either. The training pipeline's graph goes to
the dispatcher, the workers run it and stream finished batches back.

`processing_mode="distributed_epoch"`: the dispatcher hands out shard files to workers one
at a time, so an epoch reads every record once whatever the number of workers. In
`"parallel_epochs"` every worker would run the whole pipeline with the same seeds, sending
each record N times with identical degradations. Three consequences, handled by
`make_dataset`: the shard list is not shuffled (a shuffled source is not split: measured,
two workers then sent every record twice); the endless repetition runs on the workers (a
client-side `repeat` starts a new job each epoch from a fresh copy of the graph, and every
epoch repeated the first one's order and degradations); and each record's random seed
folds in the record's identity, as workers would otherwise draw in lockstep.

Workers run graphs only: a `tf.numpy_function` / `py_function` stage (the OpenCV
degradation of `benchmarks.input_pipeline`) refers to Python code that exists in this
process alone, so `distribute` refuses it. Workers read the shards at the paths this
process names: shared storage. The servers listen on every interface of their host.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import grpc
import tensorflow as tf
from tensorflow.core.framework import graph_pb2

from gfrnet_tf.errors import BadConfigError, first_line

PROCESSING_MODE = "distributed_epoch"
PYTHON_OPS = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})
CONNECT_TIMEOUT_S = 10.0
# A dispatcher's cheapest call (tensorflow/core/data/service/dispatcher.proto): an empty
# GetVersionRequest in, the protocol version out. TF's own client waits for a dispatcher
# forever, so this call, with a deadline, is what tells one from anything else that
# accepts a TCP connection.
_DISPATCHER_VERSION_METHOD = "/tensorflow.data.DispatcherService/GetVersion"


def parse_address(address: str, source: str = "input.data_service") -> tuple[str, int]:
    """`(host, port)` of a `grpc://host:port` address; `BadConfigError(source)` otherwise."""
    parts = urlsplit(address)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "grpc" or not parts.hostname or port is None or parts.path:
        raise BadConfigError(source, f"a dispatcher address grpc://host:port, got {address!r}")
    return parts.hostname, port


def distribute(dataset, address: str):
    """`dataset` run by the workers of the dispatcher at `address`, prefetched here.

    Raises `BadConfigError` if the pipeline runs Python code or nothing answers at
    `address`. Batches travel uncompressed: float images barely compress, and
    decompressing would spend the very cores the service is there to spare.
    """
    python_ops = sorted(_op_types(dataset) & PYTHON_OPS)
    if python_ops:
        raise BadConfigError(
            "input.data_service",
            f"the pipeline calls Python ({', '.join(python_ops)}, e.g. the OpenCV "
            "degradation), which remote workers cannot run: use the in-graph one",
        )
    _check_dispatcher(address)
    service = tf.data.experimental.service.distribute(PROCESSING_MODE, address, compression=None)
    return dataset.apply(service).prefetch(tf.data.AUTOTUNE)


def start_dispatcher(port: int = 0):
    """A running `DispatchServer` on `port` (0: any free one); `address(server)` names it."""
    _check_port(port, "--port")
    config = tf.data.experimental.service.DispatcherConfig(port=port)
    return _started(lambda: tf.data.experimental.service.DispatchServer(config), port)


def start_worker(dispatcher: str, port: int = 0, host: str = "localhost"):
    """A running `WorkerServer` on `port` serving `dispatcher`; clients reach it at `host`."""
    dispatcher_host, dispatcher_port = _check_dispatcher(dispatcher, "--dispatcher")
    _check_port(port, "--worker_port")
    config = tf.data.experimental.service.WorkerConfig(
        dispatcher_address=f"{dispatcher_host}:{dispatcher_port}",
        port=port,
        worker_address=f"{host}:%port%",
    )
    return _started(lambda: tf.data.experimental.service.WorkerServer(config), port)


def address(server, host: str | None = None) -> str:
    """`grpc://host:port` of a started server (`host` replaces the name it was given)."""
    name, port = server._address.rsplit(":", 1)
    return f"grpc://{host or name}:{port}"


def _check_dispatcher(address, source="input.data_service"):
    """`(host, port)` of `address` if a tf.data dispatcher answers there within
    `CONNECT_TIMEOUT_S`, else `BadConfigError` saying what answered instead."""
    host, port = parse_address(address, source)
    timeout = CONNECT_TIMEOUT_S
    start = f"start one, e.g. gfrnet-data-service --port {port}"
    if not _answers(host, port, timeout):
        raise BadConfigError(address, f"no tf.data dispatcher answers there: {start}")
    with grpc.insecure_channel(f"{host}:{port}") as channel:
        try:
            channel.unary_unary(_DISPATCHER_VERSION_METHOD)(b"", timeout=timeout)
        except grpc.RpcError as error:
            code = error.code()
            if code == grpc.StatusCode.UNIMPLEMENTED:
                what = "a gRPC server answers there, but not a tf.data dispatcher (a worker?)"
            elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
                what = (
                    "something accepts connections there but gives no gRPC answer within "
                    f"{timeout:g} s: not a tf.data dispatcher"
                )
            else:
                what = "something that does not speak gRPC answers there, not a tf.data dispatcher"
            raise BadConfigError(address, f"{what}; {start}") from None
    return host, port


def _check_port(port, flag):
    """A valid port, and a free one: gRPC binds with SO_REUSEPORT, so a second server on a
    busy port would start and share (or steal) the first one's connections."""
    if not 0 <= port < 2**16:
        raise BadConfigError(flag, f"a port 0-65535, got {port}")
    if port and _answers("127.0.0.1", port):
        raise BadConfigError(flag, f"port {port} is in use: another server answers there")


def _answers(host, port, timeout=None) -> bool:
    timeout = timeout or CONNECT_TIMEOUT_S
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError:
        return False
    return True


def _started(make_server, port):
    try:
        return make_server()
    except (tf.errors.OpError, RuntimeError) as error:
        raise BadConfigError(
            f"port {port}", f"cannot start the server: {first_line(error)}"
        ) from None


def _op_types(dataset) -> set[str]:
    """Every op type in `dataset`'s graph, functions (map bodies) included."""
    graph = graph_pb2.GraphDef()
    # The only way to see a dataset's ops; `service.distribute` serialises it the same way.
    graph.ParseFromString(dataset._as_serialized_graph().numpy())
    ops = {node.op for node in graph.node}
    for function in graph.library.function:
        ops.update(node.op for node in function.node_def)
    return ops
