"""Request states: how a caller waits for a proposal, read, snapshot or config change.

Rules:
- A request completes exactly once; the first outcome wins and later ones are ignored
  (an entry applied after its caller timed out is still applied, but nobody is told).
- Only the host completes a request (`complete`, `mark_committed` here, module
  functions so that a caller holding a RequestState can wait on it and nothing more).
- Completion may happen on any thread (the engine loop, an apply worker). Waiters on
  threads use `wait()`; coroutines on any asyncio loop use `await`, and are resumed on
  their own loop.
- Every request has a deadline; the engine sweeps expired ones once per tick, so a
  request never outlives its timeout by more than one tick.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from nodehost import errors
from nodehost.admission import DelayGate
from statemachine import Result


class ResultCode(IntEnum):
    """How a request ended; `RequestResult.raise_for_code` turns each failure into its error.

    TIMEOUT (Timeout): not done within its timeout; a proposal may still be applied.
    COMPLETED: done; a proposal's `result` is what the state machine returned.
    TERMINATED (ShardClosed; StateMachineFailed or ReplicaRemoved when that is why):
      the replica stopped, failed or was removed while the request was pending.
    REJECTED (Rejected): refused for good (a removed id, a stale change id, a snapshot
      that exists already, an expired session).
    DROPPED (ShardNotReady): no leader, or leadership moving; nothing was done, retry.
    ABORTED (Aborted): a snapshot request given up before it took effect (its disk
      write failed); the replica goes on, a later request may succeed.
    COMMITTED: with notify_commit, `wait_committed` saw the entry committed.
    """

    TIMEOUT = 0
    COMPLETED = 1
    TERMINATED = 2
    REJECTED = 3
    DROPPED = 4
    ABORTED = 5
    COMMITTED = 6


@dataclass(slots=True)
class RequestResult:
    """The outcome of a request. `result` is the state machine's Result for proposals."""

    code: ResultCode
    result: Result = field(default_factory=Result)
    snapshot_index: int = 0
    reason: str = ""
    # A more precise error than the code's own, for `raise_for_code`: a TERMINATED
    # request raises StateMachineFailed when the user's state machine stopped the
    # replica, ReplicaRemoved when the replica was removed from its shard.
    error: type[errors.RaftError] | None = None

    def completed(self) -> bool:
        return self.code is ResultCode.COMPLETED

    def committed(self) -> bool:
        return self.code is ResultCode.COMMITTED

    def timeout(self) -> bool:
        return self.code is ResultCode.TIMEOUT

    def terminated(self) -> bool:
        return self.code is ResultCode.TERMINATED

    def rejected(self) -> bool:
        return self.code is ResultCode.REJECTED

    def dropped(self) -> bool:
        return self.code is ResultCode.DROPPED

    def aborted(self) -> bool:
        return self.code is ResultCode.ABORTED

    def raise_for_code(self) -> None:
        """Raise the error matching a failed outcome (what every sync_* call does)."""
        if self.code is ResultCode.COMPLETED or self.code is ResultCode.COMMITTED:
            return
        error = self.error or _ERRORS[self.code]
        raise error(self.reason or _DEFAULT_REASONS[self.code])


_ERRORS: dict[ResultCode, type[errors.RaftError]] = {
    ResultCode.TIMEOUT: errors.Timeout,
    ResultCode.TERMINATED: errors.ShardClosed,
    ResultCode.REJECTED: errors.Rejected,
    ResultCode.DROPPED: errors.ShardNotReady,
    ResultCode.ABORTED: errors.Aborted,
}
_DEFAULT_REASONS = {
    ResultCode.TIMEOUT: "request timed out",
    ResultCode.TERMINATED: "the replica was stopped",
    ResultCode.REJECTED: "request rejected",
    ResultCode.DROPPED: "request dropped: no leader yet or leadership is moving; retry",
    ResultCode.ABORTED: "request aborted",
}

_TIMED_OUT = RequestResult(ResultCode.TIMEOUT)


class RequestState:
    """A pending request. Wait with `wait()` from a thread or `await rs` from a coroutine."""

    __slots__ = (
        "_committed",
        "_committed_event",
        "_event",
        "_lock",
        "_on_done",
        "_result",
        "_waiters",
        "deadline",
        "key",
        "notify_commit",
        "shard_id",
        "size",
        "started",
    )

    def __init__(
        self,
        key: int,
        deadline: float,
        notify_commit: bool = False,
        shard_id: int = 0,
        size: int = 0,
        started: float = 0.0,
        on_done: Callable[[ResultCode], None] | None = None,
    ) -> None:
        self.key = key
        self.shard_id = shard_id
        self.size = size  # bytes it holds while pending (a proposal's command)
        self.started = started  # the host's clock when made, for admission by delay
        self.deadline = deadline
        self.notify_commit = notify_commit
        self._lock = threading.Lock()
        self._result: RequestResult | None = None
        self._committed: RequestResult | None = None
        self._event: threading.Event | None = None
        self._committed_event: threading.Event | None = None
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[RequestResult]]] = []
        # Told the outcome's code once, on the completing thread (the metrics of proposals).
        self._on_done = on_done

    def done(self) -> bool:
        return self._result is not None

    def result(self) -> RequestResult:
        """The outcome; raises InvalidOperation while still pending."""
        if self._result is None:
            raise errors.InvalidOperation("the request is still pending")
        return self._result

    def wait(self, timeout: float | None = None) -> RequestResult:
        """Block until the outcome is known, or `timeout` seconds pass (then TIMEOUT,
        and the request stays pending: it may still complete)."""
        if self._result is not None:
            return self._result
        with self._lock:
            if self._result is not None:
                return self._result
            if self._event is None:
                self._event = threading.Event()
            event = self._event
        if timeout is None:
            timeout = max(0.0, self.deadline - time.monotonic()) + 1.0
            while not event.wait(timeout):
                timeout = 1.0
        elif not event.wait(timeout):
            return _TIMED_OUT
        assert self._result is not None
        return self._result

    def wait_committed(self, timeout: float | None = None) -> RequestResult:
        """With NodeHostConfig.notify_commit: return COMMITTED as soon as the entry is
        committed (durable on a quorum), before it is applied; else the final outcome."""
        if not self.notify_commit:
            raise errors.InvalidOperation("wait_committed needs NodeHostConfig.notify_commit")
        with self._lock:
            if self._result is not None:
                return self._committed or self._result
            if self._committed is not None:
                return self._committed
            if self._committed_event is None:
                self._committed_event = threading.Event()
            event = self._committed_event
        if not event.wait(timeout if timeout is not None else self.deadline - time.monotonic()):
            return self._committed or self._result or _TIMED_OUT
        return self._committed or self._result or _TIMED_OUT

    def __await__(self) -> Generator[Any, None, RequestResult]:
        return self._wait_async().__await__()

    async def _wait_async(self) -> RequestResult:
        if self._result is not None:
            return self._result
        loop = asyncio.get_running_loop()
        future: asyncio.Future[RequestResult] = loop.create_future()
        with self._lock:
            if self._result is not None:
                return self._result
            self._waiters.append((loop, future))
        return await future


def complete(rs: RequestState, result: RequestResult) -> bool:
    """Record the outcome of `rs`; False when one was already recorded."""
    with rs._lock:
        if rs._result is not None:
            return False
        rs._result = result
        event, committed_event = rs._event, rs._committed_event
        waiters, rs._waiters = rs._waiters, []
    if rs._on_done is not None:
        rs._on_done(result.code)
    if event is not None:
        event.set()
    if committed_event is not None:
        committed_event.set()
    if waiters:
        running = asyncio._get_running_loop()
        batch: dict[asyncio.AbstractEventLoop, list[_Resolution]] | None = getattr(
            _wakeups, "batch", None
        )
        for loop, future in waiters:
            if loop is running:
                _resolve(future, result)
            elif batch is not None:
                batch.setdefault(loop, []).append((future, result))
            elif not loop.is_closed():
                _call_soon(loop, _resolve, future, result)
    return True


def mark_committed(rs: RequestState) -> None:
    """The entry of `rs` is committed (notify_commit only)."""
    with rs._lock:
        if rs._result is not None or rs._committed is not None:
            return
        rs._committed = RequestResult(ResultCode.COMMITTED)
        event = rs._committed_event
    if event is not None:
        event.set()


_Resolution = tuple["asyncio.Future[RequestResult]", "RequestResult"]
_wakeups = threading.local()


@contextmanager
def batched_wakeups() -> Iterator[None]:
    """Requests completed inside this block on this thread resume their coroutines with
    one call per event loop at the end, not one per request: each cross-thread call is a
    syscall and a turn of the waiter's loop, and an apply batch completes many at once."""
    if getattr(_wakeups, "batch", None) is not None:
        yield
        return
    batch: dict[asyncio.AbstractEventLoop, list[_Resolution]] = {}
    _wakeups.batch = batch
    try:
        yield
    finally:
        _wakeups.batch = None
        for loop, resolutions in batch.items():
            if not loop.is_closed():
                _call_soon(loop, _resolve_all, resolutions)


def _call_soon(loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: Any) -> None:
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:  # the loop closed since we looked: nobody is waiting any more
        pass


def _resolve(future: asyncio.Future[RequestResult], result: RequestResult) -> None:
    if not future.done():
        future.set_result(result)


def _resolve_all(resolutions: list[_Resolution]) -> None:
    for future, result in resolutions:
        if not future.done():
            future.set_result(result)


class PendingRequests:
    """Requests of one kind for one replica, by key, expired by deadline.

    Bounded: `try_add` refuses a request past `max_count` requests or `max_bytes`
    (summed over their `size`; one bigger request is taken when none is pending), or
    that `gate` expects to wait too long (admission.py), so the caller can answer
    SystemBusy before doing anything. The deadline heap keeps an item per request until
    its deadline even when the request finished early; it is rebuilt from the live
    requests when it grows past twice their number, so a fast stream of short requests
    with long timeouts cannot grow it.

    Thread-safe: user threads add, the engine sweeps on its loop, apply workers complete.
    """

    def __init__(
        self,
        max_count: int = 0,
        max_bytes: int = 0,
        gate: DelayGate | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock  # the host's (nodehost.parts.Clock): when requests finish
        self._by_key: dict[int, RequestState] = {}
        self._deadlines: list[tuple[float, int, int]] = []
        self._seq = itertools.count()
        self.max_count = max_count  # 0: no bound
        self.max_bytes = max_bytes  # 0: no bound
        self.gate = gate
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._by_key)

    def add(self, rs: RequestState) -> None:
        """Register `rs`, whatever the bounds (requests that are not bounded)."""
        with self._lock:
            self._add_locked(rs)

    def try_add(self, rs: RequestState) -> str | None:
        """Register `rs`, or say which bound refuses it (nothing registered then)."""
        gate = self.gate
        if gate is not None and not gate.admit(rs.started, len(self._by_key)):
            wait = gate.expected_wait(len(self._by_key))
            return (
                f"{len(self._by_key)} requests pending would hold a new one about "
                f"{wait:.1f} s, more than {gate.target:g} s"
            )
        with self._lock:
            if self.max_count and len(self._by_key) >= self.max_count:
                return f"{len(self._by_key)} requests pending, the bound"
            if self.max_bytes and self.bytes and self.bytes + rs.size > self.max_bytes:
                return f"{self.bytes} bytes pending, {rs.size} more would pass {self.max_bytes}"
            self._add_locked(rs)
            return None

    def _add_locked(self, rs: RequestState) -> None:
        by_key = self._by_key
        by_key[rs.key] = rs
        self.bytes += rs.size
        heap = self._deadlines
        heapq.heappush(heap, (rs.deadline, next(self._seq), rs.key))
        if len(heap) > 2 * len(by_key) + 64:
            heap[:] = [(r.deadline, next(self._seq), k) for k, r in by_key.items()]
            heapq.heapify(heap)

    def get(self, key: int) -> RequestState | None:
        return self._by_key.get(key)

    def pop(self, key: int) -> RequestState | None:
        """Take a request that finished (applied, released): it counts in the rate."""
        rs = self.discard(key)
        gate = self.gate
        if rs is not None and gate is not None:
            gate.finished(self._clock(), len(self._by_key))
        return rs

    def discard(self, key: int) -> RequestState | None:
        """Take a request that did not go through (dropped): not counted in the rate."""
        with self._lock:
            rs = self._by_key.pop(key, None)
            if rs is not None:
                self.bytes -= rs.size
            return rs

    def complete(self, key: int, result: RequestResult) -> bool:
        """Finish a request that did not go through (dropped, rejected early)."""
        rs = self.discard(key)
        return rs is not None and complete(rs, result)

    def expire(self, now: float) -> int:
        """Time out every request whose deadline passed; returns how many."""
        expired: list[RequestState] = []
        with self._lock:
            heap = self._deadlines
            while heap and heap[0][0] <= now:
                _, _, key = heapq.heappop(heap)
                rs = self._by_key.get(key)
                if rs is not None and rs.deadline <= now:
                    del self._by_key[key]
                    self.bytes -= rs.size
                    expired.append(rs)
            if not self._by_key:
                heap.clear()
        for rs in expired:
            complete(rs, RequestResult(ResultCode.TIMEOUT))
        return len(expired)

    def fail_all(
        self, code: ResultCode, reason: str = "", error: type[errors.RaftError] | None = None
    ) -> None:
        with self._lock:
            pending, self._by_key = list(self._by_key.values()), {}
            self._deadlines.clear()
            self.bytes = 0
        for rs in pending:
            complete(rs, RequestResult(code, reason=reason, error=error))


def check_timeout(timeout: float) -> None:
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise errors.InvalidOperation(f"timeout must be a positive number of seconds: {timeout!r}")
