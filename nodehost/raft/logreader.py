"""The core's read-only view of a replica's durable log.

The core keeps entries it has not yet handed out for saving (the unstable tail) in
memory; everything older is read through a `LogReader`. The owner of the storage (the
engine, or the test network) writes: after saving an `Update` it calls `append`,
`apply_snapshot` and `set_state`; after creating a local snapshot it calls
`create_snapshot` and `compact`. The core only reads.
"""

from __future__ import annotations

from typing import Protocol

from protos import raft_pb2 as pb


class CompactedError(Exception):
    """The requested index is at or below the first available index (compacted away)."""


class UnavailableError(Exception):
    """The requested index is above the last saved index."""


class LogReader(Protocol):
    def state(self) -> pb.State:
        """The saved hard state."""
        ...

    def snapshot(self) -> pb.Snapshot:
        """The latest snapshot's metadata (index 0 when there is none)."""
        ...

    def first_index(self) -> int:
        """Index of the first entry available (snapshot index + 1 when compacted)."""
        ...

    def last_index(self) -> int:
        """Index of the last saved entry (the snapshot index when the log is empty)."""
        ...

    def term(self, index: int) -> int:
        """Term of entry `index`; the snapshot's term for its index.

        Raises CompactedError or UnavailableError outside [snapshot index, last_index].
        """
        ...

    def entries(self, low: int, high: int, max_bytes: int) -> list[pb.Entry]:
        """Entries [low, high), at least one if any, stopping before max_bytes is passed."""
        ...

    # Writes, by the storage owner only.
    def append(self, entries: list[pb.Entry]) -> None: ...
    def set_state(self, state: pb.State) -> None: ...
    def apply_snapshot(self, snapshot: pb.Snapshot) -> None: ...
    def create_snapshot(self, snapshot: pb.Snapshot) -> None: ...
    def compact(self, index: int) -> None: ...
