"""Background jobs: run a function over many items off the calling thread.

Workers never touch Tk (ARCHITECTURE.md). A job reports through a thread-safe queue of
events that the window drains with ``after`` in small batches; the CLI drains the same
queue to draw a progress bar. CPU-bound work runs in processes so both cores work; tests
swap the runner for :class:`SyncRunner` (napari's ``force_sync``, Porcupine's test runner).
"""
from __future__ import annotations

import itertools
import multiprocessing
import os
import queue
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Protocol, Sequence

#: How often a waiting runner looks at the cancel flag; keeps cancel well under a second.
POLL_SECONDS = 0.1


@dataclass(frozen=True)
class Outcome:
    """What one item gave: a value, or the error text (a failed item never stops the job)."""

    item: Any
    value: Any = None
    error: str | None = None


@dataclass(frozen=True)
class Progress:
    job: str
    done: int
    total: int
    item: str


@dataclass(frozen=True)
class ItemDone:
    job: str
    outcome: Outcome


@dataclass(frozen=True)
class Finished:
    job: str
    done: int
    total: int
    cancelled: bool
    errors: int
    last_error: str | None


Event = Progress | ItemDone | Finished


class Runner(Protocol):
    def imap(self, func: Callable[[Any], Any], items: Sequence[Any],
             cancel: threading.Event) -> Iterator[Outcome]: ...


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class SyncRunner:
    """Runs every item on the calling thread, in order: for tests and tiny jobs."""

    def imap(self, func, items, cancel):
        for item in items:
            if cancel.is_set():
                return
            try:
                yield Outcome(item, func(item))
            except Exception as exc:  # one bad photo must not end a batch
                yield Outcome(item, error=_describe(exc))


def _run_chunk(func: Callable[[Any], Any], items: Sequence[Any]) -> list[tuple[Any, str | None]]:
    """In a worker: (value, None) or (None, error text) per item; one bad item never ends the chunk."""
    out: list[tuple[Any, str | None]] = []
    for item in items:
        try:
            out.append((func(item), None))
        except Exception as exc:
            out.append((None, _describe(exc)))
    return out


class PoolRunner:
    """Runs items in a thread or process pool, a bounded number in flight.

    Bounded submission keeps memory flat on huge folders and lets cancel take effect
    within ``POLL_SECONDS`` plus the time of the items already running. ``chunk`` items go
    to a worker together: for items of a few milliseconds (nucleus masks), the per-item
    hand-over (pickling, the pool's threads, the job's events) otherwise costs the main
    process a tenth of a core.
    """

    def __init__(self, workers: int | None = None, processes: bool = True, start_method: str | None = None,
                 chunk: int = 1):
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.processes = processes
        self.start_method = start_method  # "spawn" from a GUI: forking a threaded Tk process is unsafe
        self.chunk = max(1, chunk)

    def _pool(self):
        if not self.processes:
            return ThreadPoolExecutor(max_workers=self.workers)
        context = multiprocessing.get_context(self.start_method) if self.start_method else None
        return ProcessPoolExecutor(max_workers=self.workers, mp_context=context)

    def imap(self, func, items, cancel):
        pending: dict[Future, list[Any]] = {}
        feed = iter(items)
        chunks = iter(lambda: list(itertools.islice(feed, self.chunk)), [])
        with self._pool() as pool:
            try:
                for chunk in itertools.islice(chunks, 2 * self.workers):
                    pending[pool.submit(_run_chunk, func, chunk)] = chunk
                while pending:
                    finished, _ = wait(pending, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
                    if cancel.is_set():
                        return
                    for future in finished:
                        chunk = pending.pop(future)
                        exc = future.exception()
                        if exc:  # the worker itself died: every item of its chunk failed
                            yield from (Outcome(item, error=_describe(exc)) for item in chunk)
                        else:
                            yield from (Outcome(item, value, error)
                                        for item, (value, error) in zip(chunk, future.result()))
                        for nxt in itertools.islice(chunks, 1):
                            pending[pool.submit(_run_chunk, func, nxt)] = nxt
            finally:
                for future in pending:
                    future.cancel()


def default_runner() -> Runner:
    return PoolRunner(processes=True)


class Job:
    """One background job; its events arrive on ``events`` (thread-safe).

    ``describe`` turns an item into the short text shown as "current item".
    """

    def __init__(self, name: str, func: Callable[[Any], Any], items: Iterable[Any], *,
                 runner: Runner | None = None, describe: Callable[[Any], str] = str):
        self.name = name
        self.func = func
        self.items = list(items)
        self.runner = runner or default_runner()
        self.describe = describe
        self.events: queue.Queue[Event] = queue.Queue()
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "Job":
        """Start on a daemon thread; may be called from the Tk thread, returns at once."""
        self._thread = threading.Thread(target=self.run, name=f"job:{self.name}", daemon=True)
        self._thread.start()
        return self

    def cancel(self) -> None:
        """May be called from any thread."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def join(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def run(self) -> Finished:
        """Run to the end on the calling thread (the CLI and tests call this directly)."""
        total, done, errors, last_error = len(self.items), 0, 0, None
        self.events.put(Progress(self.name, 0, total, ""))
        try:
            for outcome in self.runner.imap(self.func, self.items, self._cancel):
                done += 1
                if outcome.error is not None:
                    errors += 1
                    last_error = f"{self.describe(outcome.item)}: {outcome.error}"
                self.events.put(ItemDone(self.name, outcome))
                self.events.put(Progress(self.name, done, total, self.describe(outcome.item)))
        except Exception as exc:  # the pool itself broke: report, never hang the window
            errors += 1
            last_error = _describe(exc)
        finished = Finished(self.name, done, total, self._cancel.is_set() and done < total,
                            errors, last_error)
        self.events.put(finished)
        return finished

    def drain(self, limit: int = 50) -> list[Event]:
        """Take at most ``limit`` waiting events without blocking (the window's ``after`` tick)."""
        out: list[Event] = []
        while len(out) < limit:
            try:
                out.append(self.events.get_nowait())
            except queue.Empty:
                break
        return out
