"""The micro-batching worker: groups form under load, errors stay with their job, a full
queue is refused with a clear error, and cancelled jobs are not run."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import Future

import pytest

from recloop.serve.batching import GroupWorker, Overloaded


def _until_running(future: Future[int]) -> None:
    end = time.monotonic() + 5
    while not future.running():
        assert time.monotonic() < end, "the worker did not take the job"
        time.sleep(0.001)


def test_waiting_jobs_form_one_group_and_results_keep_their_order() -> None:
    gate = threading.Event()
    groups: list[list[int]] = []

    def run(jobs: list[int]) -> list[int | Exception]:
        gate.wait(5)
        groups.append(list(jobs))
        return [ValueError(f"odd {j}") if j % 2 else j * 10 for j in jobs]

    worker: GroupWorker[int, int] = GroupWorker("test", run, max_batch=4, max_pending=100)
    worker.start()
    first = worker.submit(0)  # taken alone; the worker blocks in run() on the gate
    _until_running(first)
    rest = [worker.submit(j) for j in range(1, 7)]
    gate.set()
    assert first.result(5) == 0
    results = []
    for j, f in zip(range(1, 7), rest, strict=True):
        if j % 2:
            with pytest.raises(ValueError, match=f"odd {j}"):
                f.result(5)
        else:
            results.append(f.result(5))
    assert results == [20, 40, 60]
    assert groups == [[0], [1, 2, 3, 4], [5, 6]]  # at most max_batch per group, in order
    assert (worker.groups, worker.jobs) == (3, 7)
    worker.stop()


def test_a_failing_group_fails_each_of_its_jobs_and_the_worker_goes_on() -> None:
    def run(jobs: list[int]) -> list[int]:
        if 13 in jobs:
            raise RuntimeError("bad group")
        return jobs

    worker: GroupWorker[int, int] = GroupWorker("test", run, max_batch=1, max_pending=10)
    worker.start()
    with pytest.raises(RuntimeError, match="bad group"):
        worker.call(13)
    assert worker.call(7) == 7
    worker.stop()


def test_a_full_queue_is_refused_and_cancelled_jobs_do_not_run() -> None:
    gate = threading.Event()
    ran: list[int] = []

    def run(jobs: list[int]) -> list[int]:
        gate.wait(5)
        ran.extend(jobs)
        return jobs

    worker: GroupWorker[int, int] = GroupWorker("recommend", run, max_batch=8, max_pending=2)
    worker.start()
    busy = worker.submit(0)
    _until_running(busy)
    a, b = worker.submit(1), worker.submit(2)
    with pytest.raises(Overloaded, match="2 recommend jobs waiting"):
        worker.submit(3)
    assert b.cancel()  # a client that went away before its turn
    gate.set()
    assert a.result(5) == 1
    worker.stop()
    assert ran == [0, 1]


def test_awaiting_from_the_event_loop() -> None:
    worker: GroupWorker[int, int] = GroupWorker("test", lambda js: [j + 1 for j in js], 16, 64)
    worker.start()

    async def many() -> list[int]:
        return list(await asyncio.gather(*(worker(j) for j in range(50))))

    assert asyncio.run(many()) == list(range(1, 51))
    assert worker.jobs == 50
    worker.stop()


def test_loop_callers_get_their_own_results_errors_and_cancellation() -> None:
    """Loop callers of one group are resolved together on the loop: each gets its result
    or its error, a caller cancelled before its turn is not run, and a full queue refuses
    a loop caller too."""
    gate = threading.Event()
    ran: list[int] = []

    def run(jobs: list[int]) -> list[int | Exception]:
        gate.wait(5)
        ran.extend(jobs)
        return [ValueError(f"odd {j}") if j % 2 else j for j in jobs]

    worker: GroupWorker[int, int] = GroupWorker("test", run, max_batch=8, max_pending=4)
    worker.start()

    async def scenario() -> list[object]:
        busy = worker.submit(100)  # holds the worker on the gate while the group queues
        _until_running(busy)
        tasks = [asyncio.ensure_future(worker(j)) for j in range(4)]
        await asyncio.sleep(0)  # each task queues its job
        with pytest.raises(Overloaded):
            await worker(9)
        tasks[2].cancel()
        await asyncio.sleep(0)
        gate.set()
        return list(await asyncio.gather(*tasks, return_exceptions=True))

    results = asyncio.run(scenario())
    assert results[0] == 0
    assert isinstance(results[1], ValueError) and "odd 1" in str(results[1])
    assert isinstance(results[2], asyncio.CancelledError)
    assert isinstance(results[3], ValueError)
    assert ran == [100, 0, 1, 3]  # the cancelled job never ran
    worker.stop()
