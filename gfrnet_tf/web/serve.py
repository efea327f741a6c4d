"""Serving the app with uvicorn on a socket bound first, so a busy port is one line."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time

import uvicorn

from gfrnet_tf.errors import BadConfigError

_START_SECONDS = 30


def is_loopback(host: str) -> bool:
    """Whether `host` is this machine only: the page then admits only loopback Host headers
    and needs no warning."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on `host:port` (port 0: any free port); `BadConfigError` if
    the address cannot be used (in use, not this machine's)."""
    try:
        family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(64)
    except OSError as error:
        raise BadConfigError(f"{host}:{port}", f"cannot listen here ({error.strerror or error})")
    return sock


def server(app, sock: socket.socket) -> uvicorn.Server:
    """A uvicorn server for `app`; `server.run(sockets=[sock])` serves until stopped."""
    host, port = sock.getsockname()[:2]
    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))


@contextlib.contextmanager
def running(app, host: str = "127.0.0.1", port: int = 0):
    """Serves `app` in a thread while the block runs; yields its `http://host:port` (the
    free port chosen when `port` is 0). For tests, and programs that embed the page."""
    sock = listen(host, port)
    uvicorn_server = server(app, sock)
    thread = threading.Thread(target=uvicorn_server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + _START_SECONDS
    while not uvicorn_server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            sock.close()
            raise BadConfigError(f"{host}:{port}", "the server did not start")
        time.sleep(0.05)
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        uvicorn_server.should_exit = True
        thread.join(_START_SECONDS)
        sock.close()
