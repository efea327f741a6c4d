"""The page served for real (uvicorn on 127.0.0.1, a free port) and Debian's Chromium.

`served(app)` runs the app in a thread of the test process until the block ends;
`chromium(playwright)` launches /usr/bin/chromium headless with the flags this machine
needs (no sandbox as root, no background requests to Google, a fresh profile).
Screenshots go to `$GFRNET_TEST_ARTIFACTS` (default `test-artifacts/` in the checkout).
"""

import contextlib
import os
import shutil
import threading
import time
from pathlib import Path

from gfrnet_tf.web.serve import listen, server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(
    os.environ.get("GFRNET_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts")
)


@contextlib.contextmanager
def served(app):
    """`http://127.0.0.1:PORT` while the app is served (lifespan included)."""
    sock = listen("127.0.0.1", 0)
    uvicorn_server = server(app, sock)
    thread = threading.Thread(target=uvicorn_server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uvicorn_server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        uvicorn_server.should_exit = True
        thread.join(30)
        sock.close()


def chromium(playwright):
    """Headless Debian Chromium (each launch has a new, empty profile)."""
    if not shutil.which(CHROMIUM):
        raise RuntimeError(f"{CHROMIUM} is missing: apt-get install -y chromium")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)


def artifact(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name
