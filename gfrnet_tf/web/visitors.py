"""Who is using the page: each visitor's own folder, files and results, kept apart.

A visitor is known by a random token in an HttpOnly, SameSite=Strict cookie; everything
they upload or get back lives in their own temporary folder and in their own `Visitor`,
and is looked up only through it, by ids the server made: one visitor's ids mean nothing
in another's. A visitor idle for `idle_seconds` (and not waiting for work), one who asks
to be forgotten, and every visitor when the server stops, is removed with their folder.
"""

from __future__ import annotations

import dataclasses
import itertools
import secrets
import shutil
import tempfile
import threading
import time
from pathlib import Path

from gfrnet_tf.web.uploads import UploadBudget, UploadLimits

COOKIE = "gfrnet_visitor"


@dataclasses.dataclass
class Progress:
    """What the visitor's work is doing, for the page: a stage, done of total, a message."""

    state: str = "idle"  # idle, waiting, running, done, failed
    stage: str = ""
    done: int = 0
    total: int = 0
    message: str = ""


class Visitor:
    """One visitor's folder, uploads, results and progress.

    `lock` serialises this visitor's uploads and work; ids come from one counter, so an
    id is never reused within a visitor.
    """

    def __init__(self, token: str, folder: Path, limits: UploadLimits):
        self.token = token
        self.folder = folder
        self.budget = UploadBudget(limits)
        self.lock = threading.Lock()
        self.uploads = {}  # id -> views.Upload
        self.people = {}  # the name the visitor typed -> the person's guides folder
        self.run = None  # results.Run once a restoration finished
        self.results = None  # the page's view of the run (views.draw_run)
        self.files = {}  # id -> (path, media type, download name): all the visitor may fetch
        self.progress = Progress()
        self.last_seen = time.monotonic()
        self.forgotten = False  # set when removed: work still running then cleans up after
        self._numbers = itertools.count(1)

    @property
    def view_folder(self) -> Path:
        """Where the page's thumbnails of uploads go."""
        folder = self.folder / "view"
        folder.mkdir(exist_ok=True)
        return folder

    @property
    def run_folder(self) -> Path:
        """Where the page's pictures of the latest run go (face crops, guides)."""
        folder = self.folder / "run"
        folder.mkdir(exist_ok=True)
        return folder

    def clear_run_folder(self) -> None:
        """Removes the latest run's pictures, and the ids of everything but the uploads'
        thumbnails (the run's pictures and its restored files)."""
        shutil.rmtree(self.folder / "run", ignore_errors=True)
        self.files = {i: f for i, f in self.files.items() if f[0].parent == self.view_folder}

    def next_number(self) -> int:
        return next(self._numbers)

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{self.next_number()}"

    def serve(self, path: Path, media_type: str, download: str | None = None) -> str:
        """An id under which the visitor may fetch `path` (a file in their folder);
        `download`: the file name a download of it gets."""
        file_id = self.new_id("f")
        self.files[file_id] = (path, media_type, download)
        return file_id

    @property
    def busy(self) -> bool:
        return self.progress.state in ("waiting", "running")


class TooManyVisitors(Exception):
    """The server already keeps `max_visitors` folders."""


class Visitors:
    """Every visitor of one server, under one temporary root removed by `close()`."""

    def __init__(self, limits: UploadLimits, max_visitors: int = 20, idle_seconds: float = 3600):
        self.limits = limits
        self.max_visitors = max_visitors
        self.idle_seconds = idle_seconds
        self.root = Path(tempfile.mkdtemp(prefix="gfrnet-web-"))
        self._visitors: dict[str, Visitor] = {}
        self._lock = threading.Lock()

    def get(self, token: str | None) -> Visitor | None:
        """The visitor with this cookie token, if there is one (and marks them seen)."""
        with self._lock:
            visitor = self._visitors.get(token) if token else None
        if visitor is not None:
            visitor.last_seen = time.monotonic()
        return visitor

    def create(self) -> Visitor:
        """A new visitor with a fresh token and an empty folder; `TooManyVisitors` if full."""
        self.remove_idle()
        with self._lock:
            if len(self._visitors) >= self.max_visitors:
                raise TooManyVisitors()
            token = secrets.token_urlsafe(32)
            folder = Path(tempfile.mkdtemp(prefix="visitor-", dir=self.root))
            visitor = self._visitors[token] = Visitor(token, folder, self.limits)
        return visitor

    def forget(self, visitor: Visitor) -> None:
        """Removes the visitor and their folder (their work, if any, is dropped when it ends)."""
        with self._lock:
            self._visitors.pop(visitor.token, None)
        visitor.forgotten = True
        shutil.rmtree(visitor.folder, ignore_errors=True)

    def remove_idle(self) -> int:
        """Forgets visitors idle longer than `idle_seconds` with no work waiting; how many."""
        now = time.monotonic()
        with self._lock:
            idle = [
                v
                for v in self._visitors.values()
                if now - v.last_seen > self.idle_seconds and not v.busy
            ]
        for visitor in idle:
            self.forget(visitor)
        return len(idle)

    def __len__(self) -> int:
        return len(self._visitors)

    def close(self) -> None:
        """Forgets everyone: the server's temporary root is removed."""
        with self._lock:
            self._visitors.clear()
        shutil.rmtree(self.root, ignore_errors=True)
