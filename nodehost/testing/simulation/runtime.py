"""The engine's runtime in a simulation: one simulated process, everything on its loop.

A NodeHost's engine asks its runtime (nodehost.runtime) for every thread hop. Here each
hop is a callback on the process's `SimulatedLoop`, after a seeded delay: log-store
writes complete after a disk latency, in order (one IO thread), and apply jobs run
after an apply latency, in order per worker. So the real engine, replicas and state
machine layer run single-threaded, interleaved with the network and the other
processes in a seeded order, and a crash can fall between any two of these steps.

Rules:
- Nothing blocks: `run` drives the process's own loop until the coroutine is done
  (for work that needs no simulated time, such as starting a transport), and `call`
  runs its function at once (the caller is the simulation's only thread).
- `may_block()` is False: the blocking `sync_*` calls refuse to run (a blocked caller
  would stop the world it waits for); simulated clients use `await` and the `aio_*` calls.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from nodehost.testing.simulation.loop import SimulatedLoop, running

log = logging.getLogger("nodehost.simulation")
T = TypeVar("T")


class SimulatedRuntime:
    def __init__(
        self,
        loop: SimulatedLoop,
        rng: random.Random,
        io_latency: tuple[float, float] = (0.0002, 0.002),
        apply_latency: tuple[float, float] = (0.0, 0.001),
    ) -> None:
        self.loop = loop
        self.apply_workers = 1
        self._rng = rng
        self._io_latency = io_latency
        self._apply_latency = apply_latency
        self._io_free = 0.0  # when the simulated IO thread is done with what it was given
        self._apply_free = 0.0

    def start(self, main: Coroutine[Any, Any, None]) -> None:
        self.loop.create_task(main, name="engine")

    def on_loop(self) -> bool:
        return asyncio._get_running_loop() is self.loop

    def may_block(self) -> bool:
        return False

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
        loop = self.loop
        if loop.is_closed():
            coro.close()
            raise RuntimeError(f"{loop.name} crashed")
        with running(loop):
            task = loop.create_task(coro)
        loop.scheduler.drain(loop, task.done)
        return task.result()

    def call(self, fn: Callable[[], T], timeout: float | None) -> T:
        if self.loop.is_closed():
            raise RuntimeError(f"{self.loop.name} crashed")
        with running(self.loop):
            return fn()

    def _io_slot(self) -> float:
        """The delay until a job handed to the (one) IO thread now would be done."""
        now = self.loop.time()
        low, high = self._io_latency
        self._io_free = max(now, self._io_free) + self._rng.uniform(low, high)
        return self._io_free - now

    def io(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        future: asyncio.Future[T] = self.loop.create_future()
        self.loop.call_later(self._io_slot(), _settle, future, fn, args)
        return future

    def io_later(
        self, fn: Callable[[], None], done: Callable[[BaseException | None], None]
    ) -> None:
        def job() -> None:
            try:
                fn()
            except Exception as exc:
                done(exc)
            else:
                done(None)

        self.loop.call_later(self._io_slot(), job)

    def apply(self, worker: int, job: Callable[[], None]) -> None:
        now = self.loop.time()
        low, high = self._apply_latency
        self._apply_free = max(now, self._apply_free) + self._rng.uniform(low, high)
        self.loop.call_at(self._apply_free, job)

    def listen(self, call: Callable[[], None]) -> None:
        self.loop.call_soon(_listen, call)

    def close(self) -> None:
        loop = self.loop
        if loop.is_closed():
            return
        for task in asyncio.all_tasks(loop):
            task.cancel()
        try:
            loop.scheduler.drain(
                loop, lambda: not any(not t.done() for t in asyncio.all_tasks(loop))
            )
        except RuntimeError:
            log.debug("%s: tasks left at close", loop.name)
        loop.crash()


def _settle(future: asyncio.Future[T], fn: Callable[..., T], args: tuple[Any, ...]) -> None:
    if future.cancelled():
        return
    try:
        result = fn(*args)
    except Exception as exc:
        future.set_exception(exc)
    else:
        future.set_result(result)


def _listen(call: Callable[[], None]) -> None:
    try:
        call()
    except Exception:
        logging.getLogger("nodehost.events").exception("event listener raised")
