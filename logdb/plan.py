"""The rules every write must keep, checked before anything is written.

A `Plan` checks a batch of writes against the replicas' views, tells a `BatchWriter`
what to write (RocksDB's WriteBatch, or the memory store's operations), and stages the
views the writes lead to; the store publishes them with `publish` only once the write
has succeeded. Both stores use it, so they refuse and accept exactly the same writes.

Rules (a violation is a caller bug: InvalidRequestError, nothing written):
- Entries of one record are contiguous and their terms never decrease (thesis 3.5).
- An append starts at most one past the last entry; at or below it, it overwrites
  that conflicting suffix (thesis 3.5), but never a committed entry nor one a
  snapshot covers.
- The hard state's term never decreases, its vote never changes within a term
  (thesis 3.4: one vote per term), its commit never decreases nor passes the log.
- An installed snapshot is never older than the recorded one; a local one never
  passes the log. Compaction never passes the latest snapshot: no entry is dropped
  that no snapshot covers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from logdb import keys
from logdb.errors import InvalidRequestError
from logdb.interface import SaveRecord
from logdb.view import ReplicaKey, ReplicaView
from protos import raft_pb2 as pb


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
    Each write method returns whether its batch must be synced before returning.
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
                view = current.copy()
            self.staged[key] = view
        return view

    def _existing(self, shard_id: int, replica_id: int) -> ReplicaView | None:
        key = (shard_id, replica_id)
        if key in self.staged:
            return self.staged[key]
        return self._views.get(key)

    def save_all(self, records: Sequence[SaveRecord]) -> bool:
        sync = False
        for record in records:
            self.save(record)
            sync = sync or needs_sync(record)
        return sync

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
        last = first + len(entries) - 1
        # List comparisons run in C: a quarter of the cost of a Python loop per entry.
        indexes = [entry.index for entry in entries]
        terms = [entry.term for entry in entries]
        if indexes != list(range(first, last + 1)) or terms != sorted(terms):
            at = next(
                i
                for i in range(1, len(entries))
                if indexes[i] != indexes[i - 1] + 1 or terms[i] < terms[i - 1]
            )
            raise InvalidRequestError(
                f"{view.name}: entries must be contiguous with non-decreasing terms, got "
                f"index {indexes[at]} term {terms[at]} after index {indexes[at - 1]} "
                f"term {terms[at - 1]}"
            )
        term = terms[-1]
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

    def local_snapshot(self, shard_id: int, replica_id: int, snapshot: pb.Snapshot) -> bool:
        existing = self._existing(shard_id, replica_id)
        if existing is not None and snapshot.index <= existing.snapshot_index:
            return False  # superseded, e.g. by a snapshot installed from the leader meanwhile
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
        return True

    def compact(self, shard_id: int, replica_id: int, index: int) -> bool:
        """Not synced: losing it in a crash only brings back entries a snapshot covers."""
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
            return False
        view = self._stage(shard_id, replica_id)
        self._writer.delete_entries(view, 0, index + 1)
        view.first_index = index + 1
        return False

    def bootstrap(self, shard_id: int, replica_id: int, bootstrap: pb.Bootstrap) -> bool:
        view = self._stage(shard_id, replica_id)
        copy = pb.Bootstrap()
        copy.CopyFrom(bootstrap)
        self._writer.put_bootstrap(view, copy)
        view.bootstrap = copy
        return True

    def remove(self, shard_id: int, replica_id: int) -> bool:
        existing = self._existing(shard_id, replica_id)
        if existing is not None:
            self._writer.delete_replica(existing)
        self.staged[(shard_id, replica_id)] = None
        return True


def needs_sync(record: SaveRecord) -> bool:
    """Whether a record must be synced before `save` returns.

    The core's must_sync, and always for entries and snapshots: only a record of a
    hard state alone that the core did not mark (a commit index advance, which a
    restarted replica learns again from its leader) may wait for a later sync.
    """
    return record.must_sync or bool(record.entries) or record.snapshot is not None


def publish(views: dict[ReplicaKey, ReplicaView], plan: Plan) -> None:
    for key, view in plan.staged.items():
        if view is None:
            views.pop(key, None)
        else:
            views[key] = view
