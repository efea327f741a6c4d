"""Serving the app with uvicorn on a socket bound first, so a busy port is one line."""

from __future__ import annotations

import socket

import uvicorn

from gfrnet_tf.errors import BadConfigError


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
