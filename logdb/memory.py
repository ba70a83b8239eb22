"""`MemoryLogDB`: the log store in memory, with the faults a disk has, for simulations.

It behaves as `RocksLogDB` does (same `Plan` rules, same records encoded the same
way) and adds what simulation tests of the layers above need:
- `power_cut()` drops every write not yet synced, as a machine losing power does
  (Dragonboat's StrictMem `ResetToSyncedState`); `restart()` keeps them, as a process
  crash does (the page cache survives it). Both then rebuild the views from the
  surviving records, as opening a RocksLogDB does.
- `fail_next_write()` makes the next write fail as a full disk would: WriteError,
  nothing applied, and the store refuses writes until `restart()` or `power_cut()`.

Rules:
- Writes are kept as batches of operations. A write is applied to the live records
  at once; a synced write also applies every pending batch, in order, to the synced
  records (a sync makes all earlier writes durable, as one WAL does).
- A batch is all or nothing across a power cut; `power_cut(keep=n)` keeps the first
  n unsynced batches, as a disk that wrote some of its cache before losing power.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from logdb import keys
from logdb.errors import StoreClosedError, WriteError
from logdb.interface import RaftState, SaveRecord
from logdb.view import (
    Plan,
    ReplicaKey,
    ReplicaView,
    StoredReplica,
    check_range,
    known_term,
    publish,
    recover_view,
)
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


# (op, replica, *args): put_entries(first, values), delete_entries(low, high|None),
# put(kind, value), delete_replica().
_Op = tuple[object, ...]


def _apply(store: dict[ReplicaKey, _Records], ops: list[_Op]) -> None:
    for op in ops:
        name, key = op[0], op[1]
        assert isinstance(key, tuple)
        if name == "delete_replica":
            store.pop(key, None)
            continue
        records = store.setdefault(key, _Records())
        if name == "put_entries":
            first, values = op[2], op[3]
            assert isinstance(first, int) and isinstance(values, list)
            records.entries.update(zip(range(first, first + len(values)), values, strict=True))
        elif name == "delete_entries":
            low, high = op[2], op[3]
            assert isinstance(low, int) and (high is None or isinstance(high, int))
            top = keys.MAX_UINT64 + 1 if high is None else high
            for index in [i for i in records.entries if low <= i < top]:
                del records.entries[index]
        elif name == "put":
            kind, value = op[2], op[3]
            assert isinstance(value, bytes)
            if kind == keys.KIND_BOOTSTRAP:
                records.bootstrap = value
            elif kind == keys.KIND_STATE:
                records.state = value
            else:
                records.snapshot = value


class _MemoryBatch:
    """A `BatchWriter` that records operations."""

    __slots__ = ("ops",)

    def __init__(self) -> None:
        self.ops: list[_Op] = []

    def put_entries(self, view: ReplicaView, entries: Sequence[pb.Entry]) -> None:
        values = [entry.SerializeToString() for entry in entries]
        self.ops.append(("put_entries", _key(view), entries[0].index, values))

    def delete_entries(self, view: ReplicaView, low: int, high: int | None) -> None:
        self.ops.append(("delete_entries", _key(view), low, high))

    def put_state(self, view: ReplicaView, state: pb.State) -> None:
        self.ops.append(("put", _key(view), keys.KIND_STATE, state.SerializeToString()))

    def put_snapshot(self, view: ReplicaView, snapshot: pb.Snapshot) -> None:
        self.ops.append(("put", _key(view), keys.KIND_SNAPSHOT, snapshot.SerializeToString()))

    def put_bootstrap(self, view: ReplicaView, bootstrap: pb.Bootstrap) -> None:
        self.ops.append(("put", _key(view), keys.KIND_BOOTSTRAP, bootstrap.SerializeToString()))

    def delete_replica(self, view: ReplicaView) -> None:
        self.ops.append(("delete_replica", _key(view)))


def _key(view: ReplicaView) -> ReplicaKey:
    return (view.shard_id, view.replica_id)


class MemoryLogDB:
    """The in-memory log store; see `ILogDB` for the contract of each method."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closed = False
        self._failed = False
        self._fail_next = False
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

    def fail_next_write(self) -> None:
        """The next write fails as on a full disk, and the store then refuses writes."""
        with self._lock:
            self._fail_next = True

    def pending_batches(self) -> int:
        """Writes made since the last sync (what a power cut now would lose)."""
        return len(self._pending)

    def _reopen(self) -> None:
        self._closed = False
        self._failed = False
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
        with self._lock:
            self._check_writable()
            batch = _MemoryBatch()
            plan = Plan(self._views, batch)
            sync = False
            for record in updates:
                plan.save(record)
                sync = sync or record.must_sync
            self._commit(batch, sync)
            publish(self._views, plan)

    def save_snapshot(self, shard_id: int, replica_id: int, snapshot: pb.Snapshot) -> None:
        with self._lock:
            self._check_writable()
            batch = _MemoryBatch()
            plan = Plan(self._views, batch)
            plan.local_snapshot(shard_id, replica_id, snapshot)
            self._commit(batch, sync=bool(batch.ops))
            publish(self._views, plan)

    def remove_entries_to(self, shard_id: int, replica_id: int, index: int) -> None:
        with self._lock:
            self._check_writable()
            batch = _MemoryBatch()
            plan = Plan(self._views, batch)
            plan.compact(shard_id, replica_id, index)
            self._commit(batch, sync=False)
            publish(self._views, plan)

    def save_bootstrap(self, shard_id: int, replica_id: int, bootstrap: pb.Bootstrap) -> None:
        with self._lock:
            self._check_writable()
            batch = _MemoryBatch()
            plan = Plan(self._views, batch)
            plan.bootstrap(shard_id, replica_id, bootstrap)
            self._commit(batch, sync=True)
            publish(self._views, plan)

    def remove_node_data(self, shard_id: int, replica_id: int) -> None:
        with self._lock:
            self._check_writable()
            batch = _MemoryBatch()
            plan = Plan(self._views, batch)
            plan.remove(shard_id, replica_id)
            self._commit(batch, sync=bool(batch.ops))
            publish(self._views, plan)

    def _check_writable(self) -> None:
        self._check_open()
        if self._failed:
            raise WriteError("memory store refused the write: an earlier write failed")

    def _commit(self, batch: _MemoryBatch, sync: bool) -> None:
        if self._fail_next:
            self._fail_next = False
            self._failed = True
            raise WriteError("memory store: injected write failure (disk full)")
        if batch.ops:
            _apply(self._live, batch.ops)
            self._pending.append(batch.ops)
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
