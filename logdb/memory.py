"""`MemoryLogDB`: the log store in memory, with the faults a disk has, for simulations.

It behaves as `RocksLogDB` does (same `Plan` rules, same records encoded the same
way) and adds what simulation tests of the layers above need:
- `power_cut()` drops every write not yet synced, as a machine losing power does
  (Dragonboat's StrictMem `ResetToSyncedState`); `restart()` keeps them, as a process
  crash does (the page cache survives it). Both then rebuild the views from the
  surviving records, as opening a RocksLogDB does.
- `fail_next_write()` makes the next write fail as a full disk would: WriteError, and
  the store refuses writes until `restart()` or `power_cut()` (which also disarm a
  failure not yet hit: the disk was given room). The failed batch is
  lost, or with `written=True` it reached the file but not the disk (its sync failed):
  a restart then finds it, a power cut does not.

Rules:
- Writes are kept as batches of operations. A write is applied to the live records
  at once; a synced write also applies every pending batch, in order, to the synced
  records (a sync makes all earlier writes durable, as one WAL does).
- A batch is all or nothing across a power cut; `power_cut(keep=n)` keeps the first
  n unsynced batches, as a disk that wrote some of its cache before losing power.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from logdb import keys
from logdb.errors import StoreClosedError, WriteError
from logdb.interface import RaftState, SaveRecord
from logdb.plan import Plan, publish
from logdb.view import ReplicaKey, ReplicaView, StoredReplica, check_range, known_term, recover_view
from protos import raft_pb2 as pb


@dataclass(slots=True)
class _Records:
    """One replica's stored records, encoded as RocksLogDB stores them."""

    bootstrap: bytes | None = None
    state: bytes | None = None
    snapshot: bytes | None = None
    entries: dict[int, bytes] = field(default_factory=dict)

    def copy(self) -> _Records:
        return replace(self, entries=dict(self.entries))


_Store = dict[ReplicaKey, _Records]
_Op = Callable[[_Store], None]  # one write, applied to the live and later the synced store


class _MemoryBatch:
    """A `BatchWriter` that records its writes as operations on a store."""

    __slots__ = ("ops",)

    def __init__(self) -> None:
        self.ops: list[_Op] = []

    def put_entries(self, view: ReplicaView, entries: Sequence[pb.Entry]) -> None:
        key, first = _key(view), entries[0].index
        values = [entry.SerializeToString() for entry in entries]

        def op(store: _Store) -> None:
            records = store.setdefault(key, _Records())
            records.entries.update(zip(range(first, first + len(values)), values, strict=True))

        self.ops.append(op)

    def delete_entries(self, view: ReplicaView, low: int, high: int | None) -> None:
        key, top = _key(view), keys.MAX_UINT64 + 1 if high is None else high

        def op(store: _Store) -> None:
            entries = store.setdefault(key, _Records()).entries
            for index in [i for i in entries if low <= i < top]:
                del entries[index]

        self.ops.append(op)

    def put_state(self, view: ReplicaView, state: pb.State) -> None:
        self._put(view, "state", state.SerializeToString())

    def put_snapshot(self, view: ReplicaView, snapshot: pb.Snapshot) -> None:
        self._put(view, "snapshot", snapshot.SerializeToString())

    def put_bootstrap(self, view: ReplicaView, bootstrap: pb.Bootstrap) -> None:
        self._put(view, "bootstrap", bootstrap.SerializeToString())

    def _put(self, view: ReplicaView, field_name: str, value: bytes) -> None:
        key = _key(view)
        self.ops.append(lambda store: setattr(store.setdefault(key, _Records()), field_name, value))

    def delete_replica(self, view: ReplicaView) -> None:
        key = _key(view)

        def op(store: _Store) -> None:
            store.pop(key, None)

        self.ops.append(op)


def _apply(store: _Store, ops: list[_Op]) -> None:
    for op in ops:
        op(store)


def _key(view: ReplicaView) -> ReplicaKey:
    return (view.shard_id, view.replica_id)


class MemoryLogDB:
    """The in-memory log store; see `ILogDB` for the contract of each method."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closed = False
        self._failed = False
        self._fail_next = ""
        self._live: dict[ReplicaKey, _Records] = {}
        self._synced: dict[ReplicaKey, _Records] = {}
        self._pending: list[list[_Op]] = []
        self._views: dict[ReplicaKey, ReplicaView] = {}
        self.syncs = 0  # how many synced writes were made: tests count fsyncs with it

    # ------------------------------------------------------------------ faults

    def power_cut(self, keep: int = 0) -> None:
        """Lose every unsynced write but the first `keep` batches; (re)open the store."""
        with self._lock:
            for ops in self._pending[:keep]:
                _apply(self._synced, ops)
            self._pending.clear()
            self._live = {key: records.copy() for key, records in self._synced.items()}
            self._reopen()

    def restart(self) -> None:
        """A process crash and (re)open: everything written survives, synced or not."""
        with self._lock:
            self._reopen()

    def fail_next_write(self, written: bool = False) -> None:
        """The next write fails as on a full disk, and the store then refuses writes."""
        with self._lock:
            self._fail_next = "written" if written else "lost"

    def pending_batches(self) -> int:
        """Writes made since the last sync (what a power cut now would lose)."""
        return len(self._pending)

    def _reopen(self) -> None:
        self._closed = False
        self._failed = False
        self._fail_next = ""  # reopened with room again: a failure not yet hit is gone
        views = {}
        for (shard_id, replica_id), records in self._live.items():
            stored = StoredReplica(records.bootstrap, records.state, records.snapshot)
            if records.entries:
                stored.first_index = min(records.entries)
                stored.last_index = max(records.entries)
                stored.entry_count = len(records.entries)
                stored.last_entry = records.entries[stored.last_index]
            views[(shard_id, replica_id)] = recover_view(shard_id, replica_id, stored)
        self._views = views

    # ------------------------------------------------------------------ writes

    def save(self, updates: Sequence[SaveRecord]) -> None:
        self._write(lambda plan: plan.save_all(updates))

    def save_snapshot(self, shard_id: int, replica_id: int, snapshot: pb.Snapshot) -> None:
        self._write(lambda plan: plan.local_snapshot(shard_id, replica_id, snapshot))

    def remove_entries_to(self, shard_id: int, replica_id: int, index: int) -> None:
        self._write(lambda plan: plan.compact(shard_id, replica_id, index))

    def save_bootstrap(self, shard_id: int, replica_id: int, bootstrap: pb.Bootstrap) -> None:
        self._write(lambda plan: plan.bootstrap(shard_id, replica_id, bootstrap))

    def remove_node_data(self, shard_id: int, replica_id: int) -> None:
        self._write(lambda plan: plan.remove(shard_id, replica_id))

    def _write(self, stage: Callable[[Plan], bool]) -> None:
        with self._lock:
            self._check_writable()
            batch = _MemoryBatch()
            plan = Plan(self._views, batch)
            sync = stage(plan)
            if batch.ops:
                self._commit(batch, sync)
            publish(self._views, plan)

    def _check_writable(self) -> None:
        self._check_open()
        if self._failed:
            raise WriteError("memory store refused the write: an earlier write failed")

    def _commit(self, batch: _MemoryBatch, sync: bool) -> None:
        failure, self._fail_next = self._fail_next, ""
        if failure != "lost":
            _apply(self._live, batch.ops)
            self._pending.append(batch.ops)
        if failure:
            self._failed = True
            raise WriteError("memory store: injected write failure (disk full)")
        if sync:
            for ops in self._pending:
                _apply(self._synced, ops)
            self._pending.clear()
            self.syncs += 1

    # ------------------------------------------------------------------ reads

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError("memory store is closed")

    def _view(self, shard_id: int, replica_id: int) -> ReplicaView | None:
        self._check_open()
        return self._views.get((shard_id, replica_id))

    def read_state(self, shard_id: int, replica_id: int) -> RaftState | None:
        view = self._view(shard_id, replica_id)
        return view.raft_state() if view is not None else None

    def entries(
        self, shard_id: int, replica_id: int, low: int, high: int, max_bytes: int
    ) -> list[pb.Entry]:
        with self._lock:
            view = self._view(shard_id, replica_id)
            check_range(view, low, high)
            if view is None:
                return []
            stored = self._live[(shard_id, replica_id)].entries
            out: list[pb.Entry] = []
            size = 0
            for index in range(low, high):
                value = stored[index]
                size += len(value)
                if out and size > max_bytes:
                    break
                out.append(pb.Entry.FromString(value))
            return out

    def term(self, shard_id: int, replica_id: int, index: int) -> int:
        with self._lock:
            view = self._view(shard_id, replica_id)
            term = known_term(view, index)
            if term is not None:
                return term
            return pb.Entry.FromString(self._live[(shard_id, replica_id)].entries[index]).term

    def get_bootstrap(self, shard_id: int, replica_id: int) -> pb.Bootstrap | None:
        view = self._view(shard_id, replica_id)
        if view is None or view.bootstrap is None:
            return None
        copy = pb.Bootstrap()
        copy.CopyFrom(view.bootstrap)
        return copy

    def list_node_info(self) -> list[tuple[int, int]]:
        self._check_open()
        return sorted(key for key, view in list(self._views.items()) if view.bootstrap)

    def close(self) -> None:
        with self._lock:
            self._closed = True
