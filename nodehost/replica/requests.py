"""The requests a replica owes an answer: proposals, reads, membership changes and
snapshots, each with its deadline, and the ReadIndex batches in flight.

Rules:
- Thread-safe: user threads add, the loop times out and drops, the apply worker
  completes; each registry takes its own short lock.
- Bounded where the config says (max_pending_*, max_queue_delay_ms): past a bound a
  request is refused before anything is done (SystemBusy).
- A read is answered once its batch was confirmed by the leader and the state machine
  applied up to the confirmed index (`release_reads`).
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable

from nodehost.admission import DelayGate
from nodehost.config import Config
from nodehost.errors import RaftError
from nodehost.raft import ReadContext
from nodehost.request import (
    PendingRequests,
    RequestResult,
    RequestState,
    ResultCode,
    complete,
)


class ReadTracker:
    """ReadIndex batches: waiting for confirmation, then for the apply index."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._batches: dict[tuple[int, int], list[RequestState]] = {}
        self._ready: list[tuple[int, int, list[RequestState]]] = []
        self._seq = itertools.count()

    def add_batch(self, ctx: ReadContext, requests: list[RequestState]) -> None:
        with self._lock:
            self._batches[(ctx.low, ctx.high)] = requests

    def confirmed(self, ctx: ReadContext, index: int) -> None:
        with self._lock:
            requests = self._batches.pop((ctx.low, ctx.high), None)
            if requests:
                heapq.heappush(self._ready, (index, next(self._seq), requests))

    def dropped(self, ctx: ReadContext) -> list[RequestState]:
        with self._lock:
            return self._batches.pop((ctx.low, ctx.high), None) or []

    def release(self, applied: int) -> list[RequestState]:
        if not self._ready or self._ready[0][0] > applied:
            return []
        released: list[RequestState] = []
        with self._lock:
            while self._ready and self._ready[0][0] <= applied:
                released.extend(heapq.heappop(self._ready)[2])
        return released

    def forget_done(self) -> None:
        """Drop batches whose requests all finished (timed out): the leader never answered."""
        with self._lock:
            for key in [k for k, reqs in self._batches.items() if all(r.done() for r in reqs)]:
                del self._batches[key]

    def fail_all(
        self, code: ResultCode, reason: str = "", error: type[RaftError] | None = None
    ) -> None:
        with self._lock:
            requests = [r for reqs in self._batches.values() for r in reqs]
            requests += [r for _, _, reqs in self._ready for r in reqs]
            self._batches.clear()
            self._ready.clear()
        for rs in requests:
            complete(rs, RequestResult(code, reason=reason, error=error))


class Requests:
    __slots__ = ("config_changes", "proposals", "read_tracker", "reads", "snapshots")

    def __init__(self, config: Config, clock: Callable[[], float]) -> None:
        delay = config.max_queue_delay_ms / 1000.0
        self.proposals = PendingRequests(
            config.max_pending_proposals,
            config.max_pending_proposal_bytes,
            DelayGate(delay) if delay else None,
            clock,
        )
        self.reads = PendingRequests(
            config.max_pending_reads, gate=DelayGate(delay) if delay else None, clock=clock
        )
        self.config_changes = PendingRequests()
        self.snapshots = PendingRequests()
        self.read_tracker = ReadTracker()

    def expire(self, now: float) -> None:
        self.proposals.expire(now)
        self.config_changes.expire(now)
        self.snapshots.expire(now)
        if self.reads.expire(now):
            self.read_tracker.forget_done()

    def has_pending(self) -> bool:
        """True while a request may still need timing out (read on the engine loop)."""
        return bool(
            len(self.proposals)
            or len(self.reads)
            or len(self.config_changes)
            or len(self.snapshots)
        )

    def release_reads(self, applied: int) -> None:
        """Answer the reads whose confirmed index `applied` reached."""
        for rs in self.read_tracker.release(applied):
            self.reads.pop(rs.key)
            complete(rs, RequestResult(ResultCode.COMPLETED))

    def fail_all(
        self, code: ResultCode, reason: str = "", error: type[RaftError] | None = None
    ) -> None:
        for pending in (self.proposals, self.reads, self.config_changes, self.snapshots):
            pending.fail_all(code, reason, error)
        self.read_tracker.fail_all(code, reason, error)

    def fail_unanswerable(self, result: RequestResult) -> None:
        """Everything but snapshot requests (which a removed replica can still save)."""
        for pending in (self.proposals, self.reads, self.config_changes):
            pending.fail_all(result.code, result.reason, result.error)
        self.read_tracker.fail_all(result.code, result.reason, result.error)
