"""Micro-batching: one worker thread serves queued jobs in groups.

Request handlers run on the event loop and only queue their job; the worker takes whatever
is waiting (up to ``max_batch``), runs the group in one call, and resolves each job's future.
Nothing waits to fill a batch: one lone request is served at once, and under load the jobs
that arrive during one group's work form the next group. That is how the service shares
one forward pass of the model and one database commit (one fsync) among concurrent
requests, and keeps the CPU-bound work off the event loop without a thread hop per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

__all__ = ["GroupWorker", "Overloaded"]

J = TypeVar("J")
R = TypeVar("R")
_STOP = object()


class Overloaded(Exception):
    """More jobs are waiting than the worker's queue holds."""


class GroupWorker(Generic[J, R]):
    """A thread that runs ``run(jobs)`` over groups of queued jobs.

    ``run`` returns one result per job, in order; a result that is an ``Exception`` is raised
    to that job's caller alone. If ``run`` itself raises, every job of the group gets the
    error.
    """

    def __init__(
        self,
        name: str,
        run: Callable[[list[J]], Sequence[R | Exception]],
        max_batch: int,
        max_pending: int,
    ) -> None:
        self.name, self._run, self.max_batch = name, run, max_batch
        self._queue: queue.Queue[tuple[J, Future[R] | _LoopWaiter[R]] | object] = queue.Queue(
            maxsize=max_pending
        )
        self._thread = threading.Thread(target=self._loop, name=f"recloop-{name}", daemon=True)
        self.groups = 0  # groups run, and the jobs in them (for /metrics)
        self.jobs = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout=timeout)

    def submit(self, job: J) -> Future[R]:
        future: Future[R] = Future()
        self._put(job, future)
        return future

    def _put(self, job: J, waiter: Future[R] | _LoopWaiter[R]) -> None:
        try:
            self._queue.put_nowait((job, waiter))
        except queue.Full:
            raise Overloaded(
                f"the server has {self._queue.maxsize} {self.name} jobs waiting; retry later "
                f"or add servers"
            ) from None

    async def __call__(self, job: J) -> R:
        """Run ``job`` through the worker from the event loop. The worker resolves every
        loop caller of a group with one ``call_soon_threadsafe`` (one wake-up of the loop
        per group, not per request)."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[R] = loop.create_future()
        self._put(job, _LoopWaiter(loop, waiter))
        return await waiter

    def call(self, job: J) -> R:
        """Run ``job`` through the worker and wait for it (for callers off the event loop)."""
        return self.submit(job).result()

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            group = [first]
            while len(group) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    self._queue.put(_STOP)  # stop after this group
                    break
                group.append(nxt)
            pairs: list[tuple[J, Future[R] | _LoopWaiter[R]]] = group  # type: ignore[assignment]
            self._serve(pairs)

    def _serve(self, pairs: list[tuple[J, Future[R] | _LoopWaiter[R]]]) -> None:
        live = [(job, f) for job, f in pairs if f.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            results = list(self._run([job for job, _ in live]))
            if len(results) != len(live):  # pragma: no cover - a bug in ``run``
                raise RuntimeError(f"{self.name}: {len(results)} results for {len(live)} jobs")
        except Exception as e:
            results = [e] * len(live)
        self.groups += 1
        self.jobs += len(live)
        on_loops: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[R], object]]] = {}
        for (_, future), result in zip(live, results, strict=True):
            if isinstance(future, _LoopWaiter):
                on_loops.setdefault(future.loop, []).append((future.waiter, result))
            elif isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)
        for loop, done in on_loops.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(_resolve, done)


class _LoopWaiter(Generic[R]):
    """An event-loop caller's future, resolved on its loop."""

    __slots__ = ("loop", "waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop, waiter: asyncio.Future[R]) -> None:
        self.loop, self.waiter = loop, waiter

    def set_running_or_notify_cancel(self) -> bool:
        return not self.waiter.cancelled()  # read across threads: a stale True runs it anyway


def _resolve(done: list[tuple[asyncio.Future[Any], object]]) -> None:
    """On the loop: hand each waiter its result (one callback for the whole group)."""
    for waiter, result in done:
        if waiter.done():  # cancelled meanwhile (the client went away)
            continue
        if isinstance(result, Exception):
            waiter.set_exception(result)
        else:
            waiter.set_result(result)
