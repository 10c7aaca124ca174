"""A terminal progress bar for the CLI: drawn only when stderr is a terminal."""
from __future__ import annotations

import sys
import time
from typing import Any, Callable, TextIO

from .core.jobs import Finished, ItemDone, Job
from .errors import UserError


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


def run_job_with_bar(job: Job, label: str,
                     on_result: Callable[[Any, Any], None] | None = None) -> tuple[int, list[str]]:
    """Run ``job`` on its thread while drawing a bar; returns (items done, one line per failure).

    ``on_result(item, value)`` handles each success on this thread (e.g. saves a file); a
    ``UserError`` it raises counts as that item's failure, and the batch goes on.
    """
    errors: list[str] = []
    done = 0
    with ProgressBar(len(job.items), label) as bar:
        job.start()  # on a thread, so the bar is drawn while the pool works
        while True:
            event = job.events.get()
            if isinstance(event, ItemDone):
                outcome, name = event.outcome, job.describe(event.outcome.item)
                error = outcome.error
                if error is None and on_result is not None:
                    try:
                        on_result(outcome.item, outcome.value)
                    except UserError as exc:
                        error = str(exc)
                if error is None:
                    done += 1
                else:
                    text = error.split(": ", 1)[-1] if error.split(": ", 1)[0].endswith(("Error", "Exception")) else error
                    errors.append(text if name in text else f"{name}: {text}")
                bar.update(done + len(errors), name)
            elif isinstance(event, Finished):
                if event.last_error and event.done < event.total:
                    errors.append(f"the job stopped early: {event.last_error}")
                return done, errors


def report_failures(errors: list[str], total: int, what: str) -> int:
    """Print one line per failed item; the batch fails as a whole if any did (exit 1)."""
    for line in errors:
        print(f"raabin-labeler: {line}", file=sys.stderr)
    if errors:
        raise UserError(f"{len(errors)} of {total} {what} failed (listed above)")
    return 0
