"""gfrnet-data-service: a tf.data service dispatcher or worker for `input.data_service`.

    gfrnet-data-service --port 5050                                  # the dispatcher
    gfrnet-data-service --dispatcher grpc://gpu-host:5050 --worker_port 5051   # each worker

then train with `--config.input.data_service=grpc://gpu-host:5050`: the training input
(decode, guides, Eq. 4) runs on the workers, which must read the shards at the same paths
(shared storage) and run the same TensorFlow version. Clients reach a worker at
`--worker_host` (default: this machine's host name). Prints the address it serves, one
line, then runs until interrupted (Ctrl-C or SIGTERM stops it cleanly). The servers
listen on every interface: keep them behind the cluster's firewall.
"""

from __future__ import annotations

import signal
import socket
import sys
import threading

from absl import flags

from gfrnet_tf.apps.common import make_run
from gfrnet_tf.errors import BadConfigError

PORT = flags.DEFINE_integer("port", None, "Run a dispatcher on this port (0: any free port).")
DISPATCHER = flags.DEFINE_string(
    "dispatcher", None, "Run a worker for this grpc://host:port dispatcher."
)
WORKER_PORT = flags.DEFINE_integer("worker_port", 0, "The worker's port (0: any free port).")
WORKER_HOST = flags.DEFINE_string(
    "worker_host", socket.gethostname(), "The name clients reach this worker at."
)


def main(argv):
    del argv
    from gfrnet_tf.data import service

    if (PORT.value is None) == (DISPATCHER.value is None):
        raise BadConfigError(
            "command line",
            "give --port (run a dispatcher) or --dispatcher grpc://host:port (run a worker)",
        )
    if PORT.value is not None:
        server = service.start_dispatcher(PORT.value)
        print(
            f"dispatcher listening at {service.address(server, socket.gethostname())}", flush=True
        )
    else:
        server = service.start_worker(DISPATCHER.value, WORKER_PORT.value, WORKER_HOST.value)
        print(
            f"worker listening at {service.address(server, WORKER_HOST.value)} "
            f"for {DISPATCHER.value}",
            flush=True,
        )
    _serve_until_stopped(server)


def _serve_until_stopped(server):
    """Waits in Python, where SIGINT/SIGTERM handlers run (a server's `join` waits in C++),
    then stops the server; exit status 0."""
    stop = threading.Event()
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass
    server.stop()
    print("stopped", file=sys.stderr, flush=True)


run = make_run(main)

if __name__ == "__main__":
    run()
