"""Failure bookkeeping for batch commands: one line per bad file, a summary by reason."""

from __future__ import annotations

import collections
import sys

from gfrnet_tf.errors import GFRNetError
from gfrnet_tf.io.paths import printable


class Failures:
    """Counts failures by reason; each is printed at once as `error: <file>: <problem>`."""

    def __init__(self):
        self.counts = collections.Counter()

    def add(self, reason: str, source, problem: str) -> None:
        self.counts[reason] += 1
        print(f"error: {printable(source)}: {printable(problem)}", file=sys.stderr)

    def add_error(self, error: GFRNetError) -> None:
        self.add(error.reason, error.source, error.problem)

    def summary(self) -> str:
        """`reason count, ...` sorted by reason; empty when nothing failed."""
        return ", ".join(f"{reason} {count}" for reason, count in sorted(self.counts.items()))

    def exit_if_any(self) -> None:
        """Prints the summary and exits with status 1 when anything failed."""
        if self.counts:
            print(f"failed: {self.summary()}", file=sys.stderr)
            sys.exit(1)
