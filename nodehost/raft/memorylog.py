"""`MemoryLogReader`: a complete `LogReader` kept in memory, for tests and benchmarks.

Rules:
- It holds what its owner saved, nothing more: entries after the compaction point,
  the hard state, the latest snapshot's metadata.
- Entries, snapshots and compaction are durable once written (the core always asks
  for an fsync with them). The hard state written without `sync()` is not: a
  simulated crash (`drop_unsynced`) brings back the last synced one, as a real disk
  would lose an unsynced commit index.
- Misuse (a gap in the log, a compaction past the last entry) raises ValueError: a
  test harness bug must not pass for a protocol bug.
"""

from __future__ import annotations

from protos import raft_pb2 as pb

from .logreader import CompactedError, UnavailableError
from .messages import ENTRY_OVERHEAD


class MemoryLogReader:
    def __init__(self) -> None:
        self._state = pb.State()
        self._synced_state = pb.State()
        self._snapshot = pb.Snapshot()
        # Entries after the marker (the last compacted index, and its term).
        self._marker_index = 0
        self._marker_term = 0
        self._entries: list[pb.Entry] = []

    # ------------------------------------------------------------------ reads

    def state(self) -> pb.State:
        return self._state

    def snapshot(self) -> pb.Snapshot:
        return self._snapshot

    def first_index(self) -> int:
        return self._marker_index + 1

    def last_index(self) -> int:
        return self._marker_index + len(self._entries)

    def term(self, index: int) -> int:
        marker = self._marker_index
        if index == marker:
            return self._marker_term
        if index < marker:
            raise CompactedError(index)
        if index > marker + len(self._entries):
            raise UnavailableError(index)
        return self._entries[index - marker - 1].term

    def entries(self, low: int, high: int, max_bytes: int) -> list[pb.Entry]:
        marker = self._marker_index
        if low <= marker:
            raise CompactedError(low)
        if high > marker + len(self._entries) + 1:
            raise UnavailableError(high - 1)
        out: list[pb.Entry] = []
        used = 0
        for e in self._entries[low - marker - 1 : high - marker - 1]:
            used += len(e.cmd) + ENTRY_OVERHEAD
            if out and used > max_bytes:
                break
            out.append(e)
        return out

    # ------------------------------------------------------------------ writes

    def append(self, entries: list[pb.Entry]) -> None:
        if not entries:
            return
        marker = self._marker_index
        first = entries[0].index
        if first <= marker:
            entries = entries[marker + 1 - first :]
            if not entries:
                return
            first = entries[0].index
        last = self.last_index()
        if first > last + 1:
            raise ValueError(f"gap in the log: appending {first} after {last}")
        # A conflicting suffix is overwritten by the newer leader's entries.
        del self._entries[first - marker - 1 :]
        self._entries.extend(entries)

    def set_state(self, state: pb.State) -> None:
        # Kept as given: the core builds a new State for every Update and never changes it.
        self._state = state

    def sync(self) -> None:
        """Make the hard state durable (the caller's fsync)."""
        self._synced_state = self._state

    def drop_unsynced(self) -> None:
        """Lose what a crash loses: the hard state written since the last sync."""
        self._state = self._synced_state

    def apply_snapshot(self, snapshot: pb.Snapshot) -> None:
        """A snapshot from the leader replaces the whole log."""
        if snapshot.index < self._snapshot.index:
            raise ValueError(
                f"snapshot {snapshot.index} is older than the saved one {self._snapshot.index}"
            )
        self._snapshot = snapshot
        self._marker_index = snapshot.index
        self._marker_term = snapshot.term
        self._entries = []

    def create_snapshot(self, snapshot: pb.Snapshot) -> None:
        """Record a snapshot the state machine made of the log's own entries."""
        if snapshot.index > self.last_index():
            raise ValueError(
                f"snapshot {snapshot.index} is past the last index {self.last_index()}"
            )
        if snapshot.index > self._snapshot.index:
            self._snapshot = snapshot

    def compact(self, index: int) -> None:
        """Drop entries up to and including index."""
        marker = self._marker_index
        if index <= marker:
            return
        if index > self.last_index():
            raise ValueError(f"cannot compact to {index} past the last index {self.last_index()}")
        self._marker_term = self.term(index)
        del self._entries[: index - marker]
        self._marker_index = index
