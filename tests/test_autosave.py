"""Autosave with a fake clock and a synchronous executor: debounce, retries, flush, no loss."""
from __future__ import annotations

from concurrent.futures import Executor, Future

import pytest

from raabin_labeler.app.autosave import Autosaver
from raabin_labeler.core.annotation import Author, Box, Cell, ImageAnnotation, ImageRef
from tests.conftest import SyncExecutor


class ManualExecutor(Executor):
    """Holds each job until the test runs it: a save still in flight on the worker thread."""

    def __init__(self):
        self.jobs: list[tuple[Future, object, tuple]] = []

    def submit(self, fn, /, *args, **kwargs):
        future = Future()
        self.jobs.append((future, fn, args))
        return future

    def run_all(self):
        for future, fn, args in self.jobs:
            try:
                future.set_result(fn(*args))
            except Exception as exc:
                future.set_exception(exc)
        self.jobs.clear()


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Disk:
    """A save function that records what was written and can be told to fail."""

    def __init__(self):
        self.files: dict[str, ImageAnnotation] = {}
        self.calls = 0
        self.failing: set[str] = set()

    def __call__(self, annotation: ImageAnnotation) -> None:
        self.calls += 1
        if annotation.image.path in self.failing:
            raise OSError(f"{annotation.image.path}.json: permission denied")
        self.files[annotation.image.path] = annotation


def annotation(image: str = "a.jpg", cells: int = 0) -> ImageAnnotation:
    ann = ImageAnnotation.empty(ImageRef(image, 1000, 800), Author("expert", "ann"))
    return ann.with_cells([Cell(f"c-{i}", Box(i * 10, 0, i * 10 + 5, 5)) for i in range(cells)])


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def disk():
    return Disk()


@pytest.fixture
def saver(disk, clock):
    return Autosaver(disk, delay=0.5, retry_after=2.0, clock=clock, executor=SyncExecutor())


def test_nothing_is_saved_before_the_delay_and_the_change_is_saved_after(saver, disk, clock):
    assert saver.tick().text == "saved" and not saver.dirty
    ann = annotation(cells=1)
    saver.changed(ann)
    assert saver.tick().text == "unsaved" and saver.dirty
    clock.advance(0.4)
    saver.tick()
    assert disk.calls == 0
    clock.advance(0.1)
    assert saver.tick().text == "saved"
    assert disk.files["a.jpg"] is ann and disk.calls == 1 and not saver.dirty


def test_a_newer_change_during_the_delay_postpones_the_save_and_only_the_newest_is_written(saver, disk, clock):
    saver.changed(annotation(cells=1))
    clock.advance(0.4)
    newest = annotation(cells=2)
    saver.changed(newest)
    clock.advance(0.4)  # 0.8 s after the first change, 0.4 s after the newest
    saver.tick()
    assert disk.calls == 0
    clock.advance(0.1)
    saver.tick()
    assert disk.calls == 1 and disk.files["a.jpg"] is newest


def test_changes_to_several_photos_are_all_saved(saver, disk, clock):
    saver.changed(annotation("a.jpg", 1))
    saver.changed(annotation("b.jpg", 2))
    clock.advance(1)
    assert saver.tick().text == "saved"
    assert sorted(disk.files) == ["a.jpg", "b.jpg"] and len(disk.files["b.jpg"].cells) == 2


def test_a_failing_save_shows_save_failed_keeps_the_change_and_retries_until_it_succeeds(saver, disk, clock):
    disk.failing.add("a.jpg")
    ann = annotation(cells=3)
    saver.changed(ann)
    clock.advance(0.5)
    state = saver.tick()
    assert state.failed and state.text.startswith("save failed") and "permission denied" in state.text
    assert saver.dirty and disk.calls == 1
    clock.advance(1.0)
    saver.tick()
    assert disk.calls == 1  # waits retry_after before trying again
    clock.advance(1.0)
    assert saver.tick().failed and disk.calls == 2  # still failing, still kept
    disk.failing.clear()
    clock.advance(2.0)
    state = saver.tick()
    assert state.text == "saved" and not state.failed and not saver.dirty
    assert disk.files["a.jpg"] is ann


def test_a_change_made_while_a_save_is_in_flight_is_saved_next(disk, clock):
    pool = ManualExecutor()
    saver = Autosaver(disk, delay=0.5, clock=clock, executor=pool)
    first, second = annotation(cells=1), annotation(cells=2)
    saver.changed(first)
    clock.advance(0.5)
    assert saver.tick().text == "saving"
    saver.changed(second)  # the expert keeps working while the worker writes
    pool.run_all()
    clock.advance(0.1)
    saver.tick()
    assert disk.files["a.jpg"] is first and saver.dirty  # the newer one is not forgotten
    clock.advance(0.5)
    saver.tick()
    pool.run_all()
    assert saver.tick().text == "saved"
    assert disk.files["a.jpg"] is second


def test_flush_saves_everything_at_once_without_waiting(saver, disk, clock):
    saver.changed(annotation("a.jpg", 1))
    saver.changed(annotation("b.jpg", 1))
    assert saver.flush() is None
    assert sorted(disk.files) == ["a.jpg", "b.jpg"] and saver.state.text == "saved"


def test_flush_collects_a_save_still_in_flight(disk, clock):
    pool = ManualExecutor()
    saver = Autosaver(disk, delay=0.5, clock=clock, executor=pool)
    saver.changed(annotation("a.jpg", 1))
    clock.advance(1)
    saver.tick()
    pool.run_all()
    assert saver.flush() is None and not saver.dirty and disk.calls == 1


def test_flush_reports_a_failure_and_keeps_the_change(saver, disk):
    disk.failing.add("a.jpg")
    saver.changed(annotation("a.jpg", 1))
    error = saver.flush()
    assert error and "permission denied" in error
    assert saver.dirty and saver.state.failed
    disk.failing.clear()
    assert saver.flush() is None and "a.jpg" in disk.files


def test_flush_still_saves_other_photos_when_one_fails(saver, disk):
    disk.failing.add("a.jpg")
    saver.changed(annotation("a.jpg", 1))
    saver.changed(annotation("b.jpg", 1))
    assert saver.flush() is not None
    assert "b.jpg" in disk.files


def test_one_photo_that_cannot_be_saved_does_not_block_the_others(saver, disk, clock):
    disk.failing.add("a.jpg")
    saver.changed(annotation("a.jpg", 1))
    saver.changed(annotation("b.jpg", 1))
    for _ in range(5):
        clock.advance(2.5)
        saver.tick()
    assert "b.jpg" in disk.files


def test_close_flushes(saver, disk):
    saver.changed(annotation("a.jpg", 1))
    assert saver.close() is None and "a.jpg" in disk.files


def test_an_expert_who_never_pauses_still_has_their_work_on_disk_within_a_second(saver, disk, clock):
    """Arrow-key repeat or a fast run of label keys: an edit every 0.3 s must not postpone the
    save for ever (kill -9 after 10 s of that lost all 10 s)."""
    versions = []
    for _ in range(10):
        versions.append(annotation(cells=len(versions) + 1))
        saver.changed(versions[-1])
        clock.advance(0.3)
        saver.tick()
        if disk.calls:
            break
    assert disk.calls == 1 and clock.now - 100.0 <= 1.2  # saved by the first change's second
    written = disk.files["a.jpg"]
    for _ in range(5):  # still typing: the next save comes a second after the one written
        versions.append(annotation(cells=len(versions) + 1))
        saver.changed(versions[-1])
        clock.advance(0.3)
        saver.tick()
    assert disk.calls == 2 and disk.files["a.jpg"] is not written
    clock.advance(0.5)
    saver.tick()
    assert disk.files["a.jpg"] is versions[-1] and not saver.dirty
