"""The leader's pending ReadIndex requests (thesis 6.4).

Rules:
- Each request records the commit index when it arrived; it becomes ready once a
  quorum of voters has answered a heartbeat that carried its context, or that of a
  later request: a heartbeat answer proves leadership at the time it was sent, which
  is after every earlier request arrived. So one confirmation serves a whole batch.
- Requests are kept in arrival order; readiness pops a prefix.
- Nothing here reads a clock: requests age in ticks, given by the caller.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from .quorum import quorum
from .update import ReadContext


@dataclass(slots=True)
class PendingRead:
    context: ReadContext
    index: int
    from_id: int  # who asked: this replica, or a follower that forwarded it
    tick: int
    acks: set[int] = field(default_factory=set)


class ReadIndexQueue:
    __slots__ = ("_pending", "unsent")

    def __init__(self) -> None:
        self._pending: dict[tuple[int, int], PendingRead] = {}
        # A request was added since the last heartbeat broadcast.
        self.unsent = False

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, context: ReadContext, index: int, from_id: int, tick: int) -> None:
        key = (context.low, context.high)
        if key not in self._pending:
            self._pending[key] = PendingRead(context, index, from_id, tick)
            self.unsent = True

    def latest(self) -> ReadContext | None:
        if not self._pending:
            return None
        return next(reversed(self._pending.values())).context

    def confirm(
        self, low: int, high: int, from_id: int, self_id: int, voters: Collection[int]
    ) -> list[PendingRead]:
        """Record a heartbeat answer echoing (low, high); return requests now ready."""
        read = self._pending.get((low, high))
        if read is None or from_id not in voters:
            return []
        read.acks.add(from_id)
        acks = len(read.acks) + (1 if self_id in voters else 0)
        if acks < quorum(len(voters)):
            return []
        ready = []
        for key in list(self._pending):
            ready.append(self._pending.pop(key))
            if key == (low, high):
                break
        return ready

    def expire(self, now: int, max_age: int) -> list[PendingRead]:
        """Requests older than max_age ticks: never confirmed, give up on them."""
        expired = []
        for key, read in list(self._pending.items()):
            if now - read.tick <= max_age:
                break
            expired.append(self._pending.pop(key))
        return expired

    def drain(self) -> list[PendingRead]:
        out = list(self._pending.values())
        self._pending.clear()
        self.unsent = False
        return out
