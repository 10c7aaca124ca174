"""Slow reads for a Tk view, one worker thread, results applied on the Tk thread.

A view asks for a list of ``(key, work)``; the worker runs them in order and posts each result
on a queue that the view drains with ``after`` in bounded batches (STYLE.md: threads talk to Tk
only through a queue). A new request makes everything still queued from the previous one stale:
it is skipped, and results that arrive late are dropped, so a re-sorted list never receives a
thumbnail meant for another row.
"""
from __future__ import annotations

import itertools
import queue
import sys
import threading
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Sequence

from ..errors import UserError


@dataclass(frozen=True)
class Result:
    key: Hashable
    value: Any = None
    problem: str | None = None  # a UserError's text: the user can act on it (an unreadable photo)
    crash: tuple | None = None  # ``sys.exc_info()`` of anything else: for the window's error handler


class LazyLoader:
    """One daemon thread; ``request`` and ``stop`` may be called from the Tk thread only."""

    def __init__(self, name: str = "thumbnails"):
        self.name = name
        self._results: queue.Queue[tuple[int, Result]] = queue.Queue()
        self._tokens = itertools.count(1)
        self._token = 0
        self._busy = 0  # items of the current request not yet drained

    def request(self, items: Sequence[tuple[Hashable, Callable[[], Any]]]) -> None:
        """Run ``work()`` for each item in order, off the Tk thread; earlier requests go stale."""
        token = self._token = next(self._tokens)
        self._busy = len(items)
        if not items:
            return
        items = list(items)

        def run() -> None:
            for key, work in items:
                if token != self._token:  # a newer request or stop(): leave the rest
                    return
                try:
                    result = Result(key, work())
                except UserError as exc:
                    result = Result(key, problem=str(exc))
                except Exception:
                    result = Result(key, crash=sys.exc_info())
                self._results.put((token, result))

        threading.Thread(target=run, name=f"loader:{self.name}", daemon=True).start()

    @property
    def busy(self) -> bool:
        return self._busy > 0

    def drain(self, limit: int) -> list[Result]:
        """At most ``limit`` results of the current request, stale ones dropped; never blocks."""
        out: list[Result] = []
        while len(out) < limit:
            try:
                token, result = self._results.get_nowait()
            except queue.Empty:
                break
            if token == self._token:
                self._busy -= 1
                out.append(result)
        return out

    def stop(self) -> None:
        self._token = next(self._tokens)
        self._busy = 0
