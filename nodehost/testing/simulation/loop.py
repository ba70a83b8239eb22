"""Simulated time: event loops that a seeded scheduler runs one callback at a time.

Every simulated process (a NodeHost with its clients) has its own `SimulatedLoop`, an
asyncio event loop whose clock is the scheduler's. The `Scheduler` runs them all on the
calling thread: among the loops with a callback ready it picks one with its seeded
generator and runs that callback; when none is ready, it moves time to the earliest
timer of any loop. So asyncio code (the engine, the transport, clients written as
coroutines) runs unchanged, and a run is a function of its seed.

Rules:
- Nothing here reads a clock or blocks: time moves only between callbacks, to the next
  timer. A callback that loops forever stops the simulation (as a busy loop would stop
  a process), and `Scheduler.run_until` gives up after a bound of callbacks.
- Determinism: ready callbacks run in the order they were scheduled within a loop,
  timers due at one instant in the order they were set, and the choice among loops
  comes from the seeded generator. Nothing depends on object ids or hash order.
- A crashed loop (`crash`) is closed at once: its callbacks never run, and scheduling on
  it raises RuntimeError as on any closed loop (other processes see it as gone).
- Callbacks that raise are reported through the loop's exception handler: logged, and
  kept in `Scheduler.errors` so that a run can fail on them.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import inspect
import itertools
import logging
import random
from collections import deque
from collections.abc import Callable, Coroutine, Generator
from contextlib import contextmanager
from typing import Any, TypeVar, TypeVarTuple

log = logging.getLogger("nodehost.simulation")
T = TypeVar("T")
Ts = TypeVarTuple("Ts")

_set_running_loop = asyncio._set_running_loop
_get_running_loop = asyncio._get_running_loop


class SimulationStuck(RuntimeError):
    """Nothing can happen any more (no callback ready, no timer set), or a bound on
    callbacks was reached while waiting for something."""


class SimulatedLoop(asyncio.AbstractEventLoop):
    """An asyncio loop on the scheduler's time; `Scheduler.step` runs its callbacks."""

    def __init__(self, scheduler: Scheduler, name: str) -> None:
        self.scheduler = scheduler
        self.name = name
        self._ready: deque[asyncio.Handle] = deque()
        self._closed = False
        self._exception_handler: (
            Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object] | None
        ) = None

    def __repr__(self) -> str:
        return f"<SimulatedLoop {self.name}{' crashed' if self._closed else ''}>"

    # ------------------------------------------------------------------ time

    def time(self) -> float:
        return self.scheduler.now

    # ------------------------------------------------------------------ callbacks

    def _check(self) -> None:
        if self._closed:
            raise RuntimeError("Event loop is closed")

    def call_soon(
        self,
        callback: Callable[[*Ts], object],
        *args: *Ts,
        context: contextvars.Context | None = None,
    ) -> asyncio.Handle:
        self._check()
        handle = asyncio.Handle(callback, args, self, context)
        if not self._ready:
            self.scheduler._runnable[self] = None
        self._ready.append(handle)
        return handle

    def call_soon_threadsafe(
        self,
        callback: Callable[[*Ts], object],
        *args: *Ts,
        context: contextvars.Context | None = None,
    ) -> asyncio.Handle:
        return self.call_soon(callback, *args, context=context)  # one thread: no locking

    def call_at(
        self,
        when: float,
        callback: Callable[[*Ts], object],
        *args: *Ts,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        self._check()
        handle = asyncio.TimerHandle(when, callback, args, self, context)
        self.scheduler._add_timer(self, handle)
        return handle

    def call_later(
        self,
        delay: float,
        callback: Callable[[*Ts], object],
        *args: *Ts,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        return self.call_at(self.scheduler.now + max(delay, 0.0), callback, *args, context=context)

    def _timer_handle_cancelled(self, handle: asyncio.TimerHandle) -> None:
        pass  # cancelled timers are skipped when they come due

    def _ready_handle(self, handle: asyncio.Handle) -> None:
        if not self._ready:
            self.scheduler._runnable[self] = None
        self._ready.append(handle)

    def _run_one(self) -> None:
        handle = self._ready.popleft()
        if not self._ready:
            del self.scheduler._runnable[self]
        if handle.cancelled():
            return
        previous = _get_running_loop()
        _set_running_loop(self)
        try:
            handle._run()
        finally:
            _set_running_loop(previous)

    # ------------------------------------------------------------------ futures, tasks

    def create_future(self) -> asyncio.Future[Any]:
        return asyncio.Future(loop=self)

    def create_task(
        self,
        coro: Coroutine[Any, Any, T] | Generator[Any, None, T],
        *,
        name: str | None = None,
        context: contextvars.Context | None = None,
    ) -> asyncio.Task[T]:
        self._check()
        return asyncio.Task(coro, loop=self, name=name, context=context)

    def run_in_executor(  # type: ignore[override]
        self, executor: object, func: Callable[..., T], *args: Any
    ) -> asyncio.Future[T]:
        """Runs `func` on this loop as one callback: disk work in a simulation happens
        in one step, in the order it was asked for (the executor is not used)."""
        future: asyncio.Future[T] = self.create_future()

        def run() -> None:
            if future.cancelled():
                return
            try:
                result = func(*args)
            except Exception as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)

        self.call_soon(run)
        return future

    # ------------------------------------------------------------------ state

    def is_running(self) -> bool:
        return not self._closed

    def is_closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self.crash()

    def crash(self) -> None:
        """The process is gone: nothing of it runs again."""
        if self._closed:
            return
        for task in asyncio.all_tasks(self):
            # Its coroutine never resumes; asyncio must not warn when it is collected
            # (which may be at once: its last reference may be a callback dropped here).
            task._log_destroy_pending = False  # type: ignore[attr-defined]
            coro = task.get_coro()
            if inspect.iscoroutine(coro) and inspect.getcoroutinestate(coro) == "CORO_CREATED":
                coro.close()  # never started: nothing of it ran, nothing is left to say
        self._closed = True
        self._ready.clear()
        self.scheduler._runnable.pop(self, None)

    def get_debug(self) -> bool:
        return False

    def set_debug(self, enabled: bool) -> None:
        pass

    def stop(self) -> None:
        pass

    def run_forever(self) -> None:
        raise RuntimeError("a simulated loop is run by its Scheduler")

    def run_until_complete(self, future: Any) -> Any:
        raise RuntimeError("a simulated loop is run by its Scheduler")

    async def shutdown_asyncgens(self) -> None:
        pass

    async def shutdown_default_executor(self, timeout: float | None = None) -> None:
        pass

    # ------------------------------------------------------------------ errors

    def set_exception_handler(
        self, handler: Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object] | None
    ) -> None:
        self._exception_handler = handler

    def get_exception_handler(
        self,
    ) -> Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object] | None:
        return self._exception_handler

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        message = context.get("message", "unhandled exception")
        if "task" in context:
            message = f"{message} ({context['task']!r})"
        log.error("%s: %s", self.name, message, exc_info=exc)
        self.scheduler.errors.append(f"{self.name} at {self.scheduler.now:.6f}: {message}: {exc!r}")

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        if self._exception_handler is not None:
            self._exception_handler(self, context)
        else:
            self.default_exception_handler(context)


class Scheduler:
    """Runs the simulated loops on one thread in a seeded order, on simulated time."""

    def __init__(self, seed: int, start: float = 1_000.0, busy_limit: int = 200_000) -> None:
        self.rng = random.Random(f"scheduler/{seed}")
        self.now = start
        self.steps = 0
        # Callbacks at one instant before the run is declared stuck: a process that
        # keeps itself busy without ever waiting (a livelock) would spin a real core.
        self.busy_limit = busy_limit
        self._busy = 0
        self.errors: list[str] = []
        self._runnable: dict[SimulatedLoop, None] = {}  # loops with a callback ready
        self._timers: list[tuple[float, int, SimulatedLoop, asyncio.TimerHandle]] = []
        self._seq = itertools.count()

    def loop(self, name: str) -> SimulatedLoop:
        # Sockets, pipes, signals and subprocesses are not simulated (abstract to the
        # type checker): a NodeHost on the in-memory transport calls none of them.
        return SimulatedLoop(self, name)  # type: ignore[abstract]

    def monotonic(self) -> float:
        """The simulated clock (nodehost.parts.Clock)."""
        return self.now

    def _add_timer(self, loop: SimulatedLoop, handle: asyncio.TimerHandle) -> None:
        heapq.heappush(self._timers, (handle.when(), next(self._seq), loop, handle))

    def step(self) -> bool:
        """Run one callback, moving time to the next timer first if none is ready;
        False when nothing is left to run."""
        runnable = self._runnable
        if not runnable and not self._advance():
            return False
        loops = list(runnable)
        loop = loops[self.rng.randrange(len(loops))] if len(loops) > 1 else loops[0]
        self.steps += 1
        self._busy += 1
        if self._busy > self.busy_limit:
            raise SimulationStuck(
                f"{self.busy_limit} callbacks at simulated time {self.now:.6f} without time "
                f"moving (the last on {loop.name}): something keeps itself busy"
            )
        loop._run_one()
        return True

    def _advance(self) -> bool:
        """Move time to the earliest live timer and make every timer due then ready."""
        timers = self._timers
        while timers:
            when, _, loop, handle = timers[0]
            if handle.cancelled() or loop._closed:
                heapq.heappop(timers)
                continue
            if when > self.now:
                self.now = when
                self._busy = 0
            while timers and timers[0][0] <= self.now:
                _, _, loop, handle = heapq.heappop(timers)
                if not handle.cancelled() and not loop._closed:
                    loop._ready_handle(handle)
            return True
        return False

    def run_for(self, seconds: float) -> None:
        """Run until `seconds` of simulated time have passed (or nothing is left)."""
        self.run_until_time(self.now + seconds)

    def run_until_time(self, until: float) -> None:
        runnable = self._runnable
        timers = self._timers
        while True:
            if not runnable:
                while timers and (timers[0][3].cancelled() or timers[0][2]._closed):
                    heapq.heappop(timers)
                if not timers or timers[0][0] > until:
                    self.now = max(self.now, until)
                    return
            if not self.step():
                self.now = max(self.now, until)
                return

    def run_until(
        self, done: Callable[[], bool], *, timeout: float, max_steps: int = 10_000_000
    ) -> bool:
        """Run until `done()` is true (checked after every callback) or `timeout`
        simulated seconds passed; the result of `done()`."""
        until = self.now + timeout
        runnable = self._runnable
        timers = self._timers
        limit = self.steps + max_steps
        while not done():
            if self.steps >= limit:
                raise SimulationStuck(f"{max_steps} callbacks without the awaited event")
            if not runnable:
                while timers and (timers[0][3].cancelled() or timers[0][2]._closed):
                    heapq.heappop(timers)
                if not timers or timers[0][0] > until:
                    self.now = max(self.now, until)
                    return done()
            self.step()
        return True

    def drain(self, loop: SimulatedLoop, done: Callable[[], bool], bound: int = 100_000) -> None:
        """Run only `loop`'s ready callbacks, without moving time, until `done()`: for
        work that needs no time to pass (starting or closing a transport)."""
        for _ in range(bound):
            if done() or not loop._ready:
                break
            self.steps += 1
            loop._run_one()
        if not done():
            raise SimulationStuck(f"{loop.name}: work that should take no time waits for time")


@contextmanager
def running(loop: asyncio.AbstractEventLoop) -> Generator[None, None, None]:
    """Make `loop` the running loop for a call made from outside its callbacks."""
    previous = _get_running_loop()
    _set_running_loop(loop)
    try:
        yield
    finally:
        _set_running_loop(previous)
