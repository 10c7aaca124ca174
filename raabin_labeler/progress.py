"""A terminal progress bar for the CLI: drawn only when stderr is a terminal."""
from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    """``with ProgressBar(total, "detect") as bar: bar.update(done, item)``.

    On a terminal it redraws one line at most ten times a second; elsewhere (CI logs, pipes)
    it prints nothing, so logs stay readable.
    """

    def __init__(self, total: int, label: str, stream: TextIO | None = None):
        self.total = max(0, total)
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last = 0.0
        self.done = 0

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self._draw("", force=True)
            self.stream.write("\n")
            self.stream.flush()

    def update(self, done: int, item: str = "") -> None:
        self.done = done
        self._draw(item)

    def advance(self, item: str = "") -> None:
        self.update(self.done + 1, item)

    def _draw(self, item: str, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last < 0.1 and self.done < self.total):
            return
        self._last = now
        width = 30
        frac = self.done / self.total if self.total else 1.0
        filled = int(width * frac)
        line = f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {item[-40:]}"
        self.stream.write(line.ljust(100)[:100])
        self.stream.flush()
