"""Each replica's log range in memory: what reads check against and opens rebuild.

Both stores keep a `ReplicaView` per replica (first/last index, last term, hard state,
snapshot, bootstrap) so that reads of the range and the conflict check of an append
cost a dictionary lookup, not a disk read. Views are replaced whole, never mutated
once published, so readers need no lock. `recover_view` rebuilds a view from stored
records, as an open does, and refuses records that break the rules of plan.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import DecodeError

from logdb import keys
from logdb.errors import (
    CompactedError,
    CorruptionError,
    InvalidRequestError,
    UnavailableError,
)
from logdb.interface import RaftState
from protos import raft_pb2 as pb

ReplicaKey = tuple[int, int]


@dataclass(slots=True)
class ReplicaView:
    """One replica's durable log range. pb fields are replaced, never mutated in place."""

    shard_id: int
    replica_id: int
    entry_prefix: bytes
    first_index: int = 1
    last_index: int = 0
    last_term: int = 0
    state: pb.State | None = None
    snapshot: pb.Snapshot | None = None
    bootstrap: pb.Bootstrap | None = None

    @classmethod
    def new(cls, shard_id: int, replica_id: int) -> ReplicaView:
        return cls(shard_id, replica_id, keys.prefix(keys.KIND_ENTRY, shard_id, replica_id))

    @property
    def name(self) -> str:
        return f"shard {self.shard_id} replica {self.replica_id}"

    @property
    def snapshot_index(self) -> int:
        return self.snapshot.index if self.snapshot is not None else 0

    @property
    def snapshot_term(self) -> int:
        return self.snapshot.term if self.snapshot is not None else 0

    def copy(self) -> ReplicaView:
        # Hand-written: dataclasses.replace costs ten times more, once per record saved.
        return ReplicaView(
            self.shard_id,
            self.replica_id,
            self.entry_prefix,
            self.first_index,
            self.last_index,
            self.last_term,
            self.state,
            self.snapshot,
            self.bootstrap,
        )

    def has_entries(self) -> bool:
        return self.last_index >= self.first_index

    def raft_state(self) -> RaftState | None:
        """None until a hard state, an entry or a snapshot was saved."""
        if self.state is None and self.snapshot is None and not self.has_entries():
            return None
        state = pb.State()
        if self.state is not None:
            state.CopyFrom(self.state)
        snapshot: pb.Snapshot | None = None
        if self.snapshot is not None:
            snapshot = pb.Snapshot()
            snapshot.CopyFrom(self.snapshot)
        return RaftState(state, self.first_index, self.last_index, snapshot)


@dataclass(slots=True)
class StoredReplica:
    """What an open scan found of one replica, still encoded."""

    bootstrap: bytes | None = None
    state: bytes | None = None
    snapshot: bytes | None = None
    first_index: int = 0
    last_index: int = 0
    entry_count: int = 0
    last_entry: bytes | None = None


def recover_view(shard_id: int, replica_id: int, stored: StoredReplica) -> ReplicaView:
    """Rebuild a view from stored records; CorruptionError if they break the rules."""
    view = ReplicaView.new(shard_id, replica_id)
    where = [(shard_id, replica_id)]

    def damaged(what: str) -> CorruptionError:
        return CorruptionError(f"{view.name}: {what}", where)

    try:
        if stored.bootstrap is not None:
            view.bootstrap = pb.Bootstrap.FromString(stored.bootstrap)
        if stored.state is not None:
            view.state = pb.State.FromString(stored.state)
        if stored.snapshot is not None:
            view.snapshot = pb.Snapshot.FromString(stored.snapshot)
        last_entry = pb.Entry.FromString(stored.last_entry) if stored.last_entry else None
    except DecodeError as e:
        raise damaged(f"undecodable record ({e})") from e
    snapshot_index = view.snapshot_index
    if stored.entry_count == 0:
        view.first_index = snapshot_index + 1
        view.last_index = snapshot_index
        view.last_term = view.snapshot_term
    else:
        first, last = stored.first_index, stored.last_index
        if stored.entry_count != last - first + 1:
            missing = last - first + 1 - stored.entry_count
            raise damaged(f"{missing} entries missing between {first} and {last}")
        if last_entry is None or last_entry.index != last:
            raise damaged(f"entry stored under index {last} does not hold entry {last}")
        if first > snapshot_index + 1 or last < snapshot_index:
            raise damaged(f"entries {first}..{last} do not reach snapshot {snapshot_index}")
        view.first_index, view.last_index, view.last_term = first, last, last_entry.term
    if view.state is not None and view.state.commit > view.last_index:
        raise damaged(f"commit {view.state.commit} is past the last entry {view.last_index}")
    return view


def check_range(view: ReplicaView | None, low: int, high: int) -> None:
    """Raise unless [low, high) lies within the replica's saved entries."""
    if low > high:
        raise InvalidRequestError(f"entry range [{low}, {high}) is reversed")
    first = view.first_index if view is not None else 1
    last = view.last_index if view is not None else 0
    if low < first:
        raise CompactedError(f"entry {low} is below the first available entry {first}")
    if high > last + 1:
        raise UnavailableError(f"entry {high - 1} is past the last saved entry {last}")


def known_term(view: ReplicaView | None, index: int) -> int | None:
    """The term of `index` if the view alone knows it; None when the entry must be read."""
    if view is None:
        if index == 0:
            return 0
        raise UnavailableError(f"entry {index} is past the last saved entry 0")
    if index == view.snapshot_index:
        return view.snapshot_term
    if index == view.last_index:
        return view.last_term
    if index < view.first_index:
        raise CompactedError(f"entry {index} is below the first available entry {view.first_index}")
    if index > view.last_index:
        raise UnavailableError(f"entry {index} is past the last saved entry {view.last_index}")
    return None
