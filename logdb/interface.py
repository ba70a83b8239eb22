"""The log store's contract: what the engine hands it and what it answers.

Rules:
- `save` is the only write on the hot path. It takes the records of many replicas and
  applies them in one atomic batch: after a crash either all of it or none of it is
  there. Nothing is promised durable before it returns.
- Reads see every write that returned. The log range they check against (first and
  last index, hard state) moves only once a write has returned; entries a write in
  progress overwrites may show through before it returns. Reads never wait for a
  write's sync.
- Every pb message handed in is copied or serialized; every one handed out is fresh,
  so callers may mutate what they pass and what they get.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from protos import raft_pb2 as pb


class SaveRecord(Protocol):
    """One replica's share of a `save`; the Raft core's `Update` has this shape.

    Applied in this order: `snapshot` (an INSTALLED snapshot: every saved entry of
    the replica is dropped and the log restarts after it), then `entries` (a first
    index at or below the last saved one overwrites that conflicting suffix), then
    `state` (replaces the hard state). `must_sync` asks for the write to be synced;
    records with entries or a snapshot are synced whatever it says.
    """

    @property
    def shard_id(self) -> int: ...
    @property
    def replica_id(self) -> int: ...
    @property
    def state(self) -> pb.State | None: ...
    @property
    def entries(self) -> Sequence[pb.Entry]: ...
    @property
    def snapshot(self) -> pb.Snapshot | None: ...
    @property
    def must_sync(self) -> bool: ...


@dataclass(slots=True)
class RaftState:
    """What a restarting replica needs to rebuild its log view."""

    state: pb.State
    first_index: int  # first entry available (snapshot.index + 1 when all compacted)
    last_index: int  # last entry saved (== snapshot.index when none after it)
    snapshot: pb.Snapshot | None


class ILogDB(Protocol):
    """The durable Raft log of every replica of one NodeHost.

    Implemented by `RocksLogDB` (RocksDB through rocksdict) and `MemoryLogDB` (for
    simulations). Calls are thread-safe; writes are serialized among themselves.
    """

    def save(self, updates: Sequence[SaveRecord]) -> None:
        """Persist all records in one atomic write with at most one sync.

        Synced unless no record has entries, a snapshot or must_sync set (then it is a
        commit index advance, which the next synced write makes durable too).

        Raises InvalidRequestError (nothing written) when a record would break the
        log's invariants, WriteError when the disk refused it.
        """
        ...

    def read_state(self, shard_id: int, replica_id: int) -> RaftState | None:
        """The replica's saved hard state, log range and latest snapshot; None if never saved."""
        ...

    def entries(
        self, shard_id: int, replica_id: int, low: int, high: int, max_bytes: int
    ) -> list[pb.Entry]:
        """Entries [low, high): at least one if any, then none past max_bytes in total.

        Raises CompactedError below first_index, UnavailableError above last_index + 1.
        """
        ...

    def term(self, shard_id: int, replica_id: int, index: int) -> int:
        """Term of entry `index`; the snapshot's term at the snapshot's index."""
        ...

    def save_snapshot(self, shard_id: int, replica_id: int, snapshot: pb.Snapshot) -> None:
        """Record a LOCAL snapshot (made here by the state machine), synced.

        Entries are kept; a snapshot no newer than the recorded one is ignored (an
        installed snapshot may have overtaken it).
        """
        ...

    def remove_entries_to(self, shard_id: int, replica_id: int, index: int) -> None:
        """Compaction: delete entries up to and including `index` (one range delete).

        `index` must not pass the latest snapshot. Not synced: losing it in a crash
        only brings back entries that a snapshot already covers.
        """
        ...

    def save_bootstrap(self, shard_id: int, replica_id: int, bootstrap: pb.Bootstrap) -> None:
        """Record how the replica was first started (initial members, join, kind), synced."""
        ...

    def get_bootstrap(self, shard_id: int, replica_id: int) -> pb.Bootstrap | None: ...

    def list_node_info(self) -> list[tuple[int, int]]:
        """(shard_id, replica_id) of every replica with a bootstrap record, sorted."""
        ...

    def remove_node_data(self, shard_id: int, replica_id: int) -> None:
        """Delete everything of the replica (bootstrap included), synced."""
        ...

    def close(self) -> None:
        """Release the store; idempotent. Later calls raise StoreClosedError."""
        ...
