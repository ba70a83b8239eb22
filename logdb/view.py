"""Each replica's log range in memory, and the rules every write must keep.

Both stores keep a `ReplicaView` per replica (first/last index, last term, hard state,
snapshot, bootstrap) so that reads of the range and the conflict check of an append
cost a dictionary lookup, not a disk read. A `Plan` checks a batch of writes against
the views, tells a `BatchWriter` what to write, and stages the views the writes lead
to; the store publishes them only once the write has succeeded. `recover_view`
rebuilds a view from stored records and refuses any that break the same rules.

Rules (a violation is a caller bug: InvalidRequestError, nothing written):
- Entries of one record are contiguous and their terms never decrease (thesis 3.5).
- An append starts at most one past the last entry; at or below it, it overwrites
  that conflicting suffix (thesis 3.5); entries a snapshot covers are never rewritten.
- The hard state's term never decreases, its vote never changes within a term
  (thesis 3.4: one vote per term), its commit never decreases nor passes the log.
- Compaction never passes the latest snapshot: no entry is dropped that no snapshot
  covers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from google.protobuf.message import DecodeError

from logdb import keys
from logdb.errors import (
    CompactedError,
    CorruptionError,
    InvalidRequestError,
    UnavailableError,
)
from logdb.interface import RaftState, SaveRecord
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


class BatchWriter(Protocol):
    """Where a `Plan` sends the writes of one atomic batch, in order."""

    def put_entries(self, view: ReplicaView, entries: Sequence[pb.Entry]) -> None: ...

    def delete_entries(self, view: ReplicaView, low: int, high: int | None) -> None:
        """Delete entries [low, high); high None means to the end of the replica's log."""
        ...

    def put_state(self, view: ReplicaView, state: pb.State) -> None: ...
    def put_snapshot(self, view: ReplicaView, snapshot: pb.Snapshot) -> None: ...
    def put_bootstrap(self, view: ReplicaView, bootstrap: pb.Bootstrap) -> None: ...
    def delete_replica(self, view: ReplicaView) -> None: ...


class Plan:
    """Checks one batch of writes and stages the views it leads to.

    Records for the same replica may follow each other in one batch: each is checked
    against the view the previous one staged, and the writer keeps their order.
    """

    __slots__ = ("_views", "_writer", "staged")

    def __init__(self, views: Mapping[ReplicaKey, ReplicaView], writer: BatchWriter) -> None:
        self._views = views
        self._writer = writer
        # None stages a removal.
        self.staged: dict[ReplicaKey, ReplicaView | None] = {}

    def _stage(self, shard_id: int, replica_id: int) -> ReplicaView:
        key = (shard_id, replica_id)
        view = self.staged.get(key)
        if view is None:
            current = self._views.get(key) if key not in self.staged else None
            if current is None:
                keys.check_id("shard_id", shard_id)
                keys.check_id("replica_id", replica_id)
                view = ReplicaView.new(shard_id, replica_id)
            else:
                view = replace(current)
            self.staged[key] = view
        return view

    def _existing(self, shard_id: int, replica_id: int) -> ReplicaView | None:
        key = (shard_id, replica_id)
        if key in self.staged:
            return self.staged[key]
        return self._views.get(key)

    def save(self, record: SaveRecord) -> None:
        view = self._stage(record.shard_id, record.replica_id)
        if record.snapshot is not None:
            self._install_snapshot(view, record.snapshot)
        if record.entries:
            self._append(view, record.entries)
        if record.state is not None:
            self._set_state(view, record.state)
        if view.state is not None and view.state.commit > view.last_index:
            raise InvalidRequestError(
                f"{view.name}: commit {view.state.commit} is past the last saved entry "
                f"{view.last_index}"
            )

    def _install_snapshot(self, view: ReplicaView, snapshot: pb.Snapshot) -> None:
        if snapshot.index < view.snapshot_index:
            raise InvalidRequestError(
                f"{view.name}: installing snapshot {snapshot.index}, older than the "
                f"recorded snapshot {view.snapshot_index}"
            )
        keys.check_id("snapshot index", snapshot.index)
        if view.has_entries():
            self._writer.delete_entries(view, view.first_index, None)
        copy = pb.Snapshot()
        copy.CopyFrom(snapshot)
        self._writer.put_snapshot(view, copy)
        view.snapshot = copy
        view.first_index = snapshot.index + 1
        view.last_index = snapshot.index
        view.last_term = snapshot.term

    def _append(self, view: ReplicaView, entries: Sequence[pb.Entry]) -> None:
        first = entries[0].index
        expect = first
        term = entries[0].term
        for entry in entries:
            if entry.index != expect or entry.term < term:
                raise InvalidRequestError(
                    f"{view.name}: entries must be contiguous with non-decreasing terms, "
                    f"got index {entry.index} term {entry.term} after index {expect - 1} "
                    f"term {term}"
                )
            term = entry.term
            expect += 1
        last = expect - 1
        if first <= view.snapshot_index or first == 0:
            raise InvalidRequestError(
                f"{view.name}: entry {first} is covered by snapshot {view.snapshot_index}"
            )
        if first > view.last_index + 1:
            raise InvalidRequestError(
                f"{view.name}: entry {first} leaves a gap after last entry {view.last_index}"
            )
        if first == view.last_index + 1 and entries[0].term < view.last_term:
            raise InvalidRequestError(
                f"{view.name}: entry {first} has term {entries[0].term}, below the term "
                f"{view.last_term} of entry {view.last_index}"
            )
        keys.check_id("entry index", last)
        if view.state is not None and first <= view.state.commit:
            raise InvalidRequestError(
                f"{view.name}: entry {first} would overwrite a committed entry "
                f"(commit {view.state.commit})"
            )
        if last < view.last_index:
            # The new entries overwrite [first, last]; what lies above them belongs to
            # the history they replace.
            self._writer.delete_entries(view, last + 1, None)
        self._writer.put_entries(view, entries)
        view.last_index = last
        view.last_term = term

    def _set_state(self, view: ReplicaView, state: pb.State) -> None:
        old = view.state
        if old is not None:
            if state.term < old.term:
                raise InvalidRequestError(
                    f"{view.name}: term would go back from {old.term} to {state.term}"
                )
            if state.term == old.term and old.vote != 0 and state.vote != old.vote:
                raise InvalidRequestError(
                    f"{view.name}: vote in term {state.term} would change from "
                    f"{old.vote} to {state.vote}"
                )
            if state.commit < old.commit:
                raise InvalidRequestError(
                    f"{view.name}: commit would go back from {old.commit} to {state.commit}"
                )
        copy = pb.State(term=state.term, vote=state.vote, commit=state.commit)
        self._writer.put_state(view, copy)
        view.state = copy

    def local_snapshot(self, shard_id: int, replica_id: int, snapshot: pb.Snapshot) -> None:
        existing = self._existing(shard_id, replica_id)
        if existing is not None and snapshot.index <= existing.snapshot_index:
            return  # superseded, e.g. by a snapshot installed from the leader meanwhile
        view = self._stage(shard_id, replica_id)
        if snapshot.index > view.last_index:
            raise InvalidRequestError(
                f"{view.name}: snapshot {snapshot.index} is past the last saved entry "
                f"{view.last_index}"
            )
        copy = pb.Snapshot()
        copy.CopyFrom(snapshot)
        self._writer.put_snapshot(view, copy)
        view.snapshot = copy

    def compact(self, shard_id: int, replica_id: int, index: int) -> None:
        existing = self._existing(shard_id, replica_id)
        if existing is None:
            raise InvalidRequestError(
                f"shard {shard_id} replica {replica_id}: nothing saved to compact"
            )
        if index > existing.snapshot_index:
            raise InvalidRequestError(
                f"{existing.name}: compacting to {index} would pass snapshot "
                f"{existing.snapshot_index} and lose entries no snapshot covers"
            )
        if index < existing.first_index:
            return
        view = self._stage(shard_id, replica_id)
        self._writer.delete_entries(view, 0, index + 1)
        view.first_index = index + 1

    def bootstrap(self, shard_id: int, replica_id: int, bootstrap: pb.Bootstrap) -> None:
        view = self._stage(shard_id, replica_id)
        copy = pb.Bootstrap()
        copy.CopyFrom(bootstrap)
        self._writer.put_bootstrap(view, copy)
        view.bootstrap = copy

    def remove(self, shard_id: int, replica_id: int) -> None:
        existing = self._existing(shard_id, replica_id)
        if existing is not None:
            self._writer.delete_replica(existing)
        self.staged[(shard_id, replica_id)] = None


def publish(views: dict[ReplicaKey, ReplicaView], plan: Plan) -> None:
    for key, view in plan.staged.items():
        if view is None:
            views.pop(key, None)
        else:
            views[key] = view


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
