"""Background jobs: progress, failures that do not stop a batch, cancel within a second, and
workers that never run on the calling (Tk) thread."""
from __future__ import annotations

import threading
import time

from raabin_labeler.core.jobs import Finished, ItemDone, Job, PoolRunner, Progress, SyncRunner


def square(x: int) -> int:
    if x == 3:
        raise ValueError("three is unlucky")
    return x * x


def slow(x: int) -> int:
    time.sleep(0.2)
    return x


def test_progress_results_and_failures_are_reported_in_order_with_a_sync_runner():
    job = Job("squares", square, range(5), runner=SyncRunner())
    finished = job.run()
    events = job.drain(limit=1000)
    progress = [e for e in events if isinstance(e, Progress)]
    assert [(p.done, p.total) for p in progress] == [(0, 5), (1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]
    values = {e.outcome.item: e.outcome for e in events if isinstance(e, ItemDone)}
    assert values[4].value == 16 and values[3].error == "ValueError: three is unlucky"
    assert isinstance(events[-1], Finished)
    assert (finished.done, finished.errors, finished.cancelled) == (5, 1, False)
    assert finished.last_error == "3: ValueError: three is unlucky"


def test_drain_takes_small_batches():
    job = Job("squares", square, range(20), runner=SyncRunner())
    job.run()
    assert len(job.drain(limit=7)) == 7
    assert len(job.drain(limit=1000)) == 2 * 20 + 2 - 7


def test_cancel_takes_effect_within_a_second_in_a_process_pool():
    job = Job("slow", slow, range(200), runner=PoolRunner(workers=2, processes=True)).start()
    while not any(isinstance(e, ItemDone) for e in job.drain()):
        time.sleep(0.01)
    t0 = time.monotonic()
    job.cancel()
    assert job.join(timeout=5)
    assert time.monotonic() - t0 < 1.0
    finished = [e for e in job.drain(limit=10_000) if isinstance(e, Finished)]
    assert finished and finished[0].cancelled and finished[0].done < 200


def record_thread(_item) -> int:
    return threading.get_ident()


def test_thread_pool_workers_never_run_on_the_calling_thread():
    job = Job("where", record_thread, range(8), runner=PoolRunner(workers=2, processes=False)).start()
    assert job.join(timeout=10)
    idents = {e.outcome.value for e in job.drain(limit=100) if isinstance(e, ItemDone)}
    assert idents and threading.get_ident() not in idents


def test_start_returns_at_once_and_runs_on_another_thread():
    t0 = time.monotonic()
    job = Job("slow", slow, range(4), runner=PoolRunner(workers=2, processes=False)).start()
    assert time.monotonic() - t0 < 0.1
    assert job.join(timeout=5)
    assert sorted(e.outcome.value for e in job.drain(limit=100) if isinstance(e, ItemDone)) == [0, 1, 2, 3]


def test_items_sent_in_chunks_are_each_reported_and_fail_alone():
    job = Job("squares", square, range(20), runner=PoolRunner(workers=2, processes=True, chunk=8))
    finished = job.run()
    outcomes = {e.outcome.item: e.outcome for e in job.drain(limit=1000) if isinstance(e, ItemDone)}
    assert sorted(outcomes) == list(range(20))
    assert outcomes[3].error == "ValueError: three is unlucky" and outcomes[3].value is None
    assert all(outcomes[k].value == k * k for k in range(20) if k != 3)  # 3's chunk-mates are unharmed
    assert (finished.done, finished.errors) == (20, 1)
