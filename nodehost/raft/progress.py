"""What a leader knows about each follower's log, and how fast it may send to it.

Rules (thesis 3.5 and 10.2, etcd's progress tracker):
- PROBE: the leader does not know where the follower's log ends. It sends one
  REPLICATE at a time and waits (`paused`) for the answer, a heartbeat answer, or a
  tick-free retry trigger; each rejection moves `next` back.
- REPLICATE: the follower is known to match up to `match`. The leader streams entries
  optimistically (`next` runs ahead of `match`), at most `max_inflight` messages
  unacknowledged; a rejection sends the follower back to PROBE.
- SNAPSHOT: the follower needs a snapshot; nothing else is sent until the transfer is
  reported done or failed, or the follower's answer shows it caught up.
- `match` never decreases while this leader leads; `next` > `match` always.
"""

from __future__ import annotations

from collections import deque
from enum import IntEnum


class ProgressState(IntEnum):
    PROBE = 0
    REPLICATE = 1
    SNAPSHOT = 2


class Progress:
    __slots__ = (
        "active",
        "inflight",
        "match",
        "max_inflight",
        "next",
        "paused",
        "probe_due",
        "sent_commit",
        "snapshot_index",
        "state",
    )

    def __init__(self, next_index: int, max_inflight: int) -> None:
        self.match = 0
        self.next = next_index
        self.state = ProgressState.PROBE
        self.paused = False
        self.snapshot_index = 0
        # Heard from since the last check-quorum round (thesis 6.2).
        self.active = True
        self.inflight: deque[int] = deque()
        self.max_inflight = max_inflight
        # The commit index this follower was last told, so that a commit is announced
        # once per follower per pass instead of once per acknowledgement.
        self.sent_commit = 0
        # Send a REPLICATE even if it carries nothing new (see HEARTBEAT_RESP).
        self.probe_due = False

    def __repr__(self) -> str:
        return (
            f"Progress({self.state.name} match={self.match} next={self.next}"
            f"{' paused' if self.paused else ''} inflight={len(self.inflight)})"
        )

    def become_probe(self) -> None:
        if self.state is ProgressState.SNAPSHOT:
            self.next = max(self.match + 1, self.snapshot_index + 1)
            self.snapshot_index = 0
        else:
            self.next = self.match + 1
        self.state = ProgressState.PROBE
        self.paused = False
        self.inflight.clear()

    def become_replicate(self) -> None:
        self.state = ProgressState.REPLICATE
        self.next = self.match + 1
        self.paused = False
        self.inflight.clear()

    def become_snapshot(self, index: int) -> None:
        self.state = ProgressState.SNAPSHOT
        self.snapshot_index = index
        self.paused = False
        self.inflight.clear()

    def is_paused(self) -> bool:
        state = self.state
        if state is ProgressState.REPLICATE:
            return len(self.inflight) >= self.max_inflight
        if state is ProgressState.PROBE:
            return self.paused
        return True

    def sent(self, last: int, count: int) -> None:
        """A REPLICATE carrying `count` entries ending at `last` went out."""
        if self.state is ProgressState.REPLICATE:
            if count:
                self.next = last + 1
                self.inflight.append(last)
        else:
            self.paused = True

    def acknowledged(self, index: int) -> bool:
        """The follower's log matches ours up to index; True if match moved."""
        moved = index > self.match
        if moved:
            self.match = index
            self.paused = False
        if self.next <= index:
            self.next = index + 1
        inflight = self.inflight
        while inflight and inflight[0] <= index:
            inflight.popleft()
        return moved

    def rejected(self, rejected: int, hint: int) -> bool:
        """The follower's log does not hold our entry at `rejected`; `hint` is where we
        should try next (its guess, refined by ours). False for a stale rejection."""
        if self.state is ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.become_probe()
        elif self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, hint + 1), self.match + 1)
        self.paused = False
        return True
