"""Debounced saving off the Tk thread, with retries: no change is ever silently dropped.

The window calls :meth:`Autosaver.tick` every ~100 ms from ``after``; a change is saved once
``delay`` seconds pass without a newer one, or at the latest ``max_wait`` seconds after the first
change not saved yet (an expert who never pauses — arrow-key repeat, a fast run of label keys —
would otherwise have nothing on disk until they stop), on a worker thread. A failed save keeps the change
pending, shows "save failed" and is retried; :meth:`flush` saves everything before closing.
Clock and executor are injectable, so tests run it with a fake clock and synchronously.
"""
from __future__ import annotations

import time
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Hashable

from ..core.annotation import ImageAnnotation

Key = tuple[str, str]  # (author id, image)


@dataclass(frozen=True)
class SaveState:
    text: str  # "saved", "unsaved", "saving" or "save failed: …"
    failed: bool = False


def _key(annotation: ImageAnnotation) -> Key:
    return annotation.author.id, annotation.image.path


class Autosaver:
    def __init__(self, save: Callable[[ImageAnnotation], object], *, delay: float = 0.5,
                 max_wait: float = 1.0, retry_after: float = 2.0, clock: Callable[[], float] = time.monotonic,
                 executor: Executor | None = None):
        self._save = save
        self.delay = delay
        self.max_wait = max_wait
        self.retry_after = retry_after
        self.clock = clock
        self._executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="autosave")
        self._pending: dict[Hashable, ImageAnnotation] = {}
        self._last_change = 0.0
        self._waiting_since: dict[Hashable, float] = {}  # per photo: its oldest change not on disk
        self._retry_at: dict[Hashable, float] = {}  # per photo: one failing photo blocks no other
        self._in_flight: tuple[Future, Key, ImageAnnotation] | None = None
        self.error: str | None = None
        self.saves = 0

    def changed(self, annotation: ImageAnnotation) -> None:
        """Record the newest version of an annotation; call on the Tk thread."""
        key, now = _key(annotation), self.clock()
        self._pending[key] = annotation
        self._waiting_since.setdefault(key, now)
        self._last_change = now

    def latest(self, author_id: str, image: str) -> ImageAnnotation | None:
        """The newest unsaved (or being saved) version, which is newer than the file on disk."""
        key = (author_id, image)
        if key in self._pending:
            return self._pending[key]
        if self._in_flight is not None and self._in_flight[1] == key:
            return self._in_flight[2]
        return None

    @property
    def state(self) -> SaveState:
        if self.error is not None:
            return SaveState(f"save failed: {self.error}", failed=True)
        if self._in_flight is not None:
            return SaveState("saving")
        return SaveState("unsaved" if self._pending else "saved")

    @property
    def dirty(self) -> bool:
        return bool(self._pending) or self._in_flight is not None

    def tick(self) -> SaveState:
        """Collect a finished save and start the next one when due; cheap, never blocks."""
        now = self.clock()
        if self._in_flight is not None:
            future, key, annotation = self._in_flight
            if not future.done():
                return self.state
            self._in_flight = None
            self._settle(key, annotation, future.exception(), now)
        due = [k for k in self._pending if self._due(k, now)]
        if due:
            key = due[0]
            annotation = self._pending[key]
            self._in_flight = (self._executor.submit(self._save, annotation), key, annotation)
            if self._in_flight[0].done():  # a synchronous executor: settle at once
                self.tick()
        return self.state

    def _due(self, key: Hashable, now: float) -> bool:
        if key in self._retry_at:
            return now >= self._retry_at[key]
        return (now - self._last_change >= self.delay
                or now - self._waiting_since.get(key, now) >= self.max_wait)

    def _settle(self, key: Key, annotation: ImageAnnotation, exc: BaseException | None, now: float) -> None:
        if exc is None:
            self.saves += 1
            if self._pending.get(key) is annotation:  # nothing newer arrived meanwhile
                del self._pending[key]
                self._waiting_since.pop(key, None)
            elif key in self._pending:  # a newer change waits from the moment this one was written
                self._waiting_since[key] = now
            self._retry_at.pop(key, None)
            if not self._retry_at:
                self.error = None
        else:
            self.error = str(exc)
            self._retry_at[key] = now + self.retry_after

    def flush(self) -> str | None:
        """Save everything now, on the calling thread; returns the errors' text if any failed.

        A photo that cannot be saved stays pending and does not keep the others from saving.
        """
        if self._in_flight is not None:
            future, key, annotation = self._in_flight
            exc = future.exception()
            self._in_flight = None
            self._settle(key, annotation, exc, self.clock())
        errors = []
        for key, annotation in list(self._pending.items()):
            try:
                self._save(annotation)
            except Exception as exc:  # reported to the caller, kept pending
                errors.append(str(exc))
                self._retry_at[key] = self.clock() + self.retry_after
                continue
            self.saves += 1
            del self._pending[key]
            self._waiting_since.pop(key, None)
            self._retry_at.pop(key, None)
        self.error = "; ".join(errors) or None
        return self.error

    def close(self) -> str | None:
        error = self.flush()
        self._executor.shutdown(wait=True)
        return error
