"""Long work off the event loop: a few worker threads, first come first served.

Restoring takes seconds to minutes of both cores; the server's event loop only queues it
and answers other requests (pages, uploads, progress) meanwhile. `workers` bounds how many
restorations run at once (one by default: a second would only halve the speed of the
first and double the memory); the others wait in order and the page shows their place.
A failure of one visitor's work is that visitor's message; the server goes on.
"""

from __future__ import annotations

import logging
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from gfrnet_tf.errors import GFRNetError
from gfrnet_tf.io.paths import printable
from gfrnet_tf.web.visitors import Progress, Visitor

logger = logging.getLogger(__name__)


class Reporter:
    """Given to the work: tells the visitor's page the stage and how far it is."""

    def __init__(self, visitor: Visitor):
        self._visitor = visitor

    def stage(self, stage: str, total: int = 0) -> None:
        self._visitor.progress = Progress("running", stage, 0, total)

    def step(self, done: int | None = None) -> None:
        progress = self._visitor.progress
        progress.done = progress.done + 1 if done is None else done


class WorkQueue:
    """Runs each visitor's work on one of `workers` threads, in the order asked for."""

    def __init__(self, workers: int = 1):
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gfrnet-web")
        self._waiting: list[Visitor] = []
        self._lock = threading.Lock()

    def submit(self, visitor: Visitor, work: Callable[[Reporter], None], stage: str) -> bool:
        """Queues `work(reporter)` for the visitor; False if their earlier work is not done."""
        with self._lock:
            if visitor.busy:
                return False
            visitor.progress = Progress("waiting", stage)
            self._waiting.append(visitor)
        self._executor.submit(self._run, visitor, work, stage)
        return True

    def position(self, visitor: Visitor) -> int | None:
        """1 for the next to start, None when not waiting."""
        with self._lock:
            return self._waiting.index(visitor) + 1 if visitor in self._waiting else None

    def close(self) -> None:
        """Drops work that has not started; waits for none."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _run(self, visitor: Visitor, work: Callable[[Reporter], None], stage: str) -> None:
        with self._lock:
            self._waiting.remove(visitor)
        try:
            if visitor.forgotten:
                return
            visitor.progress = Progress("running", stage)
            with visitor.lock:
                work(Reporter(visitor))
            visitor.progress = Progress("done", "finished", message=visitor.progress.message)
        except GFRNetError as error:
            problem = f"{printable(error.source)}: {printable(error.problem)}"
            visitor.progress = Progress("failed", "stopped", message=f"error: {problem}")
        except Exception:
            logger.exception("a restoration failed")
            visitor.progress = Progress(
                "failed", "stopped", message="error: the restoration failed unexpectedly"
            )
        finally:
            if visitor.forgotten:  # removed while working: what the work wrote goes too
                shutil.rmtree(visitor.folder, ignore_errors=True)
