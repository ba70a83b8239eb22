"""Where a NodeHost's engine does its work: its event loop, its log-store IO, its apply
workers and its listener calls.

`ThreadedRuntime`, the default, is what a server wants: the loop on a thread of its own
(uvloop), the log store on one IO thread, state machines on `apply_workers` threads and
event listeners on one more. nodehost.testing.simulation runs the very same engine on
one thread, in a seeded order and on simulated time, by handing in a runtime of its own:
the engine asks the runtime for every thread hop, so it runs unchanged under either.

Rules:
- `run` and `call` are for other threads: they wait for the loop (Timeout past their
  bound, a RaftError, never the bare TimeoutError) and raise RuntimeError on the loop.
- `io` runs blocking log-store work off the loop and resumes the awaiting coroutine on
  it; `io_later` runs it in the background in the same order and reports how it ended.
- `apply(worker, job)`: jobs given to one worker run one at a time, in order; jobs of
  different workers may run at the same time.
- `listen(call)`: listener calls run one at a time, in order, never on the loop.
- `close` is called once, after the engine stopped its work; it cancels what is still
  pending on the loop and stops every thread it started.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeVar

from nodehost.errors import Timeout

log = logging.getLogger("nodehost.engine")
T = TypeVar("T")


class Runtime(Protocol):
    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The engine's event loop."""
        ...

    @property
    def apply_workers(self) -> int:
        """How many apply workers `apply` may be given jobs for."""
        ...

    def start(self, main: Coroutine[Any, Any, None]) -> None:
        """Start the loop and run `main` on it (the engine's passes)."""
        ...

    def on_loop(self) -> bool:
        """True when called from the loop's own thread (where waiting deadlocks)."""
        ...

    def may_block(self) -> bool:
        """False where a caller must never wait on a thread event (a simulation runs
        everything on one thread: a blocked caller stops the world it waits for)."""
        ...

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
        """Run `coro` on the loop from another thread and wait for its result."""
        ...

    def call(self, fn: Callable[[], T], timeout: float | None) -> T:
        """Run `fn` on the loop and wait: either it runs and its result comes back, or
        it never runs and Timeout is raised (a caller that gave up never has its change
        made behind its back)."""
        ...

    def io(self, fn: Callable[..., T], *args: Any) -> Awaitable[T]:
        """Run blocking `fn(*args)` off the loop; await it on the loop for its result."""
        ...

    def io_later(
        self, fn: Callable[[], None], done: Callable[[BaseException | None], None]
    ) -> None:
        """Run `fn` off the loop after the IO already queued; then `done(error or None)`
        (off the loop too)."""
        ...

    def apply(self, worker: int, job: Callable[[], None]) -> None:
        """Run `job` on apply worker `worker` (0 <= worker < apply_workers)."""
        ...

    def listen(self, call: Callable[[], None]) -> None:
        """Run an event listener's `call` off the loop, after the ones before it."""
        ...

    def close(self) -> None:
        """Cancel what is left on the loop and stop every thread; idempotent."""
        ...


def new_event_loop(use_uvloop: bool) -> asyncio.AbstractEventLoop:
    if use_uvloop:
        try:
            import uvloop

            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
            return loop
        except ImportError:  # pragma: no cover - platforms without uvloop
            pass
    return asyncio.new_event_loop()


class ThreadedRuntime:
    """The loop on its own thread, one IO thread, `apply_workers` apply threads, and a
    listener thread started only when a listener call first comes."""

    def __init__(self, apply_workers: int, use_uvloop: bool = True) -> None:
        if apply_workers < 1:
            raise ValueError(f"apply_workers must be at least 1, got {apply_workers}")
        self.apply_workers = apply_workers
        self.loop = new_event_loop(use_uvloop)
        self._io = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="nodehost-io")
        self._apply_queues: list[queue.SimpleQueue[Callable[[], None] | None]] = []
        self._apply_threads: list[threading.Thread] = []
        for i in range(apply_workers):
            q: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
            thread = threading.Thread(
                target=_work, args=(q,), name=f"nodehost-apply-{i}", daemon=True
            )
            self._apply_queues.append(q)
            self._apply_threads.append(thread)
            thread.start()
        self._listener_queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._listener_thread: threading.Thread | None = None
        self._listener_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run_loop, name="nodehost-engine", daemon=True)
        self._closed = False

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self, main: Coroutine[Any, Any, None]) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(main, self.loop)

    def on_loop(self) -> bool:
        return threading.current_thread() is self._thread

    def may_block(self) -> bool:
        return not self.on_loop()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
        if self.on_loop():
            coro.close()
            raise RuntimeError("Runtime.run called on the engine loop")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise Timeout(f"the NodeHost's engine did not answer within {timeout} s") from None

    def call(self, fn: Callable[[], T], timeout: float | None) -> T:
        lock = threading.Lock()
        state = {"started": False, "abandoned": False}

        async def wrapper() -> T:
            with lock:
                if state["abandoned"]:
                    raise asyncio.CancelledError
                state["started"] = True
            return fn()

        if self.on_loop():
            raise RuntimeError("Runtime.call called on the engine loop")
        future = asyncio.run_coroutine_threadsafe(wrapper(), self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            with lock:
                if not state["started"]:
                    state["abandoned"] = True
                    raise Timeout(
                        f"the NodeHost's engine did not answer within {timeout} s"
                    ) from None
            return future.result()  # it runs now; `fn` never awaits, so this is short

    def io(self, fn: Callable[..., T], *args: Any) -> Awaitable[T]:
        return self.loop.run_in_executor(self._io, fn, *args)

    def io_later(
        self, fn: Callable[[], None], done: Callable[[BaseException | None], None]
    ) -> None:
        future = self._io.submit(fn)

        def finished(f: concurrent.futures.Future[None]) -> None:
            if not f.cancelled():
                done(f.exception())

        future.add_done_callback(finished)

    def apply(self, worker: int, job: Callable[[], None]) -> None:
        self._apply_queues[worker].put(job)

    def listen(self, call: Callable[[], None]) -> None:
        if self._listener_thread is None:
            with self._listener_lock:
                if self._listener_thread is None and not self._closed:
                    self._listener_thread = threading.Thread(
                        target=_listen,
                        args=(self._listener_queue,),
                        name="nodehost-events",
                        daemon=True,
                    )
                    self._listener_thread.start()
        self._listener_queue.put(call)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive():
            try:
                self.run(_cancel_remaining_tasks(), timeout=5)
            except Exception:  # pragma: no cover - best effort at shutdown
                log.debug("tasks left at shutdown", exc_info=True)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
        for q in self._apply_queues:
            q.put(None)
        for thread in self._apply_threads:
            thread.join(timeout=10)
        self._io.shutdown(wait=True)
        with self._listener_lock:
            listener = self._listener_thread
        if listener is not None:
            self._listener_queue.put(None)
            listener.join(timeout=5)
        if not self.loop.is_running():
            self.loop.close()


def _work(q: queue.SimpleQueue[Callable[[], None] | None]) -> None:
    while True:
        job = q.get()
        if job is None:
            return
        job()


def _listen(q: queue.SimpleQueue[Callable[[], None] | None]) -> None:
    while True:
        call = q.get()
        if call is None:
            return
        try:
            call()
        except Exception:
            logging.getLogger("nodehost.events").exception("event listener raised")


async def _cancel_remaining_tasks() -> None:
    """Let the tasks the transport leaves on the loop finish (gRPC aborts the server-side
    RPCs of peers still connected when the server stops; it needs a few loop turns), so
    closing the loop destroys no pending task. Only what is still pending after that
    is cancelled."""
    current = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=1.0)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=1.0)
