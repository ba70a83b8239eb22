"""`RocksLogDB`: the durable log of every replica of a NodeHost, in one RocksDB.

Rules:
- One writer at a time (`_write_lock`, held across the sync). Readers take no lock:
  they read the published views, which are replaced whole and never mutated, and
  RocksDB, which is safe to read from any thread.
- A write is `db.write(batch, sync=False)` then `db.flush_wal(sync=True)`: the same
  single atomic WAL record and fsync as a synced write, but rocksdict releases the
  GIL only in `flush_wal` (see the package docstring for the measurements).
- Views are published only after the write succeeded. After a failed write the store
  refuses all further writes (fail-stop); reopening replays what reached the disk.
- Every rocksdict exception is translated here; RocksDB's own checksums guard the
  bytes (see the package docstring), the open scan guards the structure.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import NoReturn

from rocksdict import (
    AccessType,
    BlockBasedOptions,
    Cache,
    DBRecoveryMode,
    Options,
    Rdict,
    ReadOptions,
    WriteBatch,
    WriteOptions,
)

from logdb import keys
from logdb.errors import (
    CorruptionError,
    DeploymentMismatchError,
    FormatError,
    LogDBError,
    StoreClosedError,
    WriteError,
)
from logdb.interface import RaftState, SaveRecord
from logdb.plan import Plan, publish
from logdb.scan import scan_store
from logdb.view import ReplicaKey, ReplicaView, check_range, known_term
from protos import raft_pb2 as pb

MiB = 1024 * 1024


class _RocksBatch:
    """A `BatchWriter` that fills one rocksdict WriteBatch."""

    __slots__ = ("batch", "empty")

    def __init__(self) -> None:
        self.batch = WriteBatch(raw_mode=True)
        self.empty = True

    def put_entries(self, view: ReplicaView, entries: Sequence[pb.Entry]) -> None:
        put = self.batch.put
        prefix = view.entry_prefix
        index = entries[0].index  # the Plan checked they are contiguous
        for entry in entries:
            put(prefix + index.to_bytes(8, "big"), entry.SerializeToString())
            index += 1
        self.empty = False

    def delete_entries(self, view: ReplicaView, low: int, high: int | None) -> None:
        prefix = view.entry_prefix
        end = keys.entry_range_end(prefix) if high is None else keys.entry_key(prefix, high)
        self.batch.delete_range(keys.entry_key(prefix, low), end)
        self.empty = False

    def _put(self, kind: int, view: ReplicaView, value: bytes) -> None:
        self.batch.put(keys.prefix(kind, view.shard_id, view.replica_id), value)
        self.empty = False

    def put_state(self, view: ReplicaView, state: pb.State) -> None:
        self._put(keys.KIND_STATE, view, state.SerializeToString())

    def put_snapshot(self, view: ReplicaView, snapshot: pb.Snapshot) -> None:
        self._put(keys.KIND_SNAPSHOT, view, snapshot.SerializeToString())

    def put_bootstrap(self, view: ReplicaView, bootstrap: pb.Bootstrap) -> None:
        self._put(keys.KIND_BOOTSTRAP, view, bootstrap.SerializeToString())

    def delete_replica(self, view: ReplicaView) -> None:
        for kind in (keys.KIND_BOOTSTRAP, keys.KIND_STATE, keys.KIND_SNAPSHOT):
            self.batch.delete(keys.prefix(kind, view.shard_id, view.replica_id))
        self.delete_entries(view, 0, None)


def _options(wal_dir: str | None, write_buffer_bytes: int, cache_bytes: int) -> Options:
    """Bounded memory for many small replicas in one column family.

    Memtables: at most 3 of `write_buffer_bytes`; the WAL is capped at 4 of them so
    that replay after a crash stays short. Block cache, index and filter blocks
    included: `cache_bytes`.
    """
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    # A torn last record (a write cut by a crash before its sync) is dropped; any
    # other damage fails the open (see the package docstring).
    options.set_wal_recovery_mode(DBRecoveryMode.tolerate_corrupted_tail_records())
    options.set_paranoid_checks(True)
    options.set_write_buffer_size(write_buffer_bytes)
    options.set_max_write_buffer_number(3)
    options.set_db_write_buffer_size(3 * write_buffer_bytes)
    options.set_max_total_wal_size(4 * write_buffer_bytes)
    options.set_max_background_jobs(2)
    options.set_max_open_files(512)
    options.set_level_compaction_dynamic_level_bytes(True)
    # RocksDB's own info log: bounded too (it grows by a line per flush).
    options.set_keep_log_file_num(2)
    options.set_max_log_file_size(1 * MiB)
    table = BlockBasedOptions()
    table.set_block_cache(Cache(cache_bytes))
    table.set_cache_index_and_filter_blocks(True)
    options.set_block_based_table_factory(table)
    if wal_dir:
        options.set_wal_dir(wal_dir)
    return options


def _open_error(path: str, error: Exception) -> LogDBError:
    text = str(error)
    if "Corruption" in text:
        return CorruptionError(
            f"store at {path} is damaged and was not opened: {text}. Its replicas must "
            "be recovered from their peers"
        )
    if "/LOCK" in text:  # RocksDB's lock file, held by another open of the same store
        return LogDBError(f"store at {path} is already open (one NodeHost per store): {text}")
    return LogDBError(f"cannot open store at {path}: {text}")


class RocksLogDB:
    """The RocksDB log store; see `ILogDB` for the contract of each method."""

    def __init__(
        self,
        path: str,
        deployment_id: int = 0,
        *,
        wal_dir: str | None = None,
        write_buffer_bytes: int = 16 * MiB,
        cache_bytes: int = 16 * MiB,
        fsync: bool = True,
        read_only: bool = False,
    ) -> None:
        """Open (or create) the store at `path`.

        `read_only` opens an existing store for reading only, for tools that inspect a
        stopped NodeHost: RocksDB replays the write-ahead log into memory without
        writing anything back, nothing is created, and every write raises
        StoreClosedError. (rocksdict itself still rewrites its small
        `rocksdict-config.json` in `path` on every open; a caller that must leave the
        directory untouched opens a directory of links to the store's files.)
        """
        keys.check_id("deployment_id", deployment_id)
        self.path = path
        self.read_only = read_only
        # False only for benchmarks that measure everything but the disk: a write is
        # then durable against a process crash (it is in the OS) but not a power cut.
        self._fsync = fsync
        self._write_lock = threading.Lock()
        self._closed = False
        self._failed: Exception | None = None
        self._no_sync = WriteOptions()
        self._no_sync.sync = False
        try:
            if read_only:
                if not os.path.isfile(os.path.join(path, "CURRENT")):
                    raise FormatError(f"{path} holds no log store")
                self._db = Rdict(
                    path,
                    _options(wal_dir, write_buffer_bytes, cache_bytes),
                    access_type=AccessType.read_only(False),
                )
            else:
                os.makedirs(path, exist_ok=True)
                if wal_dir:
                    os.makedirs(wal_dir, exist_ok=True)
                self._db = Rdict(path, _options(wal_dir, write_buffer_bytes, cache_bytes))
        except LogDBError:
            raise
        except Exception as e:
            raise _open_error(path, e) from None
        try:
            self._check_header(deployment_id)
            self._views: dict[ReplicaKey, ReplicaView] = scan_store(self._db, path)
        except BaseException:
            self._db.close()
            raise

    def _check_header(self, deployment_id: int) -> None:
        try:
            raw = self._db.get(keys.META_KEY)
        except Exception as e:
            raise _open_error(self.path, e) from None
        if raw is None:
            if self.read_only:
                raise FormatError(f"{self.path} holds no log store header")
            it = self._db.iter(ReadOptions())
            it.seek_to_first()
            holds_data = it.valid()
            del it
            if holds_data:
                raise FormatError(f"{self.path} holds data but no log store header")
            sync = WriteOptions()
            sync.sync = True
            try:
                self._db.put(keys.META_KEY, keys.encode_meta(deployment_id), sync)
            except Exception as e:
                raise WriteError(f"cannot create store at {self.path}: {e}") from None
            return
        header = keys.decode_meta(raw)
        if header is None or header[0] != keys.MAGIC:
            raise FormatError(f"{self.path} is not a log store (unknown header)")
        _, version, stored_deployment = header
        if version != keys.FORMAT_VERSION:
            raise FormatError(
                f"{self.path} holds format version {version}; this code reads version "
                f"{keys.FORMAT_VERSION}"
            )
        if stored_deployment != deployment_id:
            raise DeploymentMismatchError(
                f"{self.path} belongs to deployment {stored_deployment}, not {deployment_id}"
            )

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
        """Stage writes on a Plan (which says whether to sync), write, then publish."""
        with self._write_lock:
            self._check_writable()
            batch = _RocksBatch()
            plan = Plan(self._views, batch)
            sync = stage(plan)
            if not batch.empty:
                self._commit(batch, sync)
            publish(self._views, plan)

    def _check_writable(self) -> None:
        if self._closed:
            raise StoreClosedError(f"store at {self.path} is closed")
        if self.read_only:
            raise StoreClosedError(f"store at {self.path} was opened read-only")
        if self._failed is not None:
            raise WriteError(
                f"store at {self.path} refused the write: an earlier write failed "
                f"({self._failed}); close and reopen it"
            )

    def _commit(self, batch: _RocksBatch, sync: bool) -> None:
        try:
            self._db.write(batch.batch, self._no_sync)
            if sync:
                self._db.flush_wal(self._fsync)
        except Exception as e:
            self._failed = e
            raise WriteError(
                f"write to store at {self.path} failed, nothing of it is acknowledged: {e}"
            ) from None

    # ------------------------------------------------------------------ reads

    def _view(self, shard_id: int, replica_id: int) -> ReplicaView | None:
        if self._closed:
            raise StoreClosedError(f"store at {self.path} is closed")
        return self._views.get((shard_id, replica_id))

    def read_state(self, shard_id: int, replica_id: int) -> RaftState | None:
        view = self._view(shard_id, replica_id)
        return view.raft_state() if view is not None else None

    def entries(
        self, shard_id: int, replica_id: int, low: int, high: int, max_bytes: int
    ) -> list[pb.Entry]:
        view = self._view(shard_id, replica_id)
        check_range(view, low, high)
        if low == high or view is None:
            return []
        prefix = view.entry_prefix
        options = ReadOptions()
        options.set_iterate_upper_bound(keys.entry_key(prefix, high))
        decode = pb.Entry.FromString
        out: list[pb.Entry] = []
        size = 0
        full = False
        it = None
        try:
            it = self._db.iter(options)
            it.seek(keys.entry_key(prefix, low))
            while it.valid():
                value = it.value()
                size += len(value)
                if out and size > max_bytes:
                    full = True
                    break
                entry = decode(value)
                if entry.index != low + len(out):
                    break
                out.append(entry)
                it.next()
            else:
                it.status()
        except Exception as e:
            it = None  # an iterator kept alive by the traceback would keep the DB open
            raise self._read_error(view, e) from None
        if not full and low + len(out) < high:
            self._missing(view, low + len(out))
        return out

    def _missing(self, view: ReplicaView, index: int) -> NoReturn:
        """An entry the view promised is not there: compacted meanwhile, or lost."""
        current = self._view(view.shard_id, view.replica_id)
        check_range(current, index, index + 1)
        raise CorruptionError(f"{view.name}: entry {index} is missing", [view_key(view)])

    def term(self, shard_id: int, replica_id: int, index: int) -> int:
        view = self._view(shard_id, replica_id)
        term = known_term(view, index)
        if term is not None:
            return term
        assert view is not None  # known_term raised otherwise
        try:
            value = self._db.get(keys.entry_key(view.entry_prefix, index))
        except Exception as e:
            raise self._read_error(view, e) from None
        if value is None:
            self._missing(view, index)
        entry = pb.Entry.FromString(value)
        if entry.index != index:
            raise CorruptionError(
                f"{view.name}: entry stored under index {index} holds index {entry.index}",
                [view_key(view)],
            )
        return entry.term

    def get_bootstrap(self, shard_id: int, replica_id: int) -> pb.Bootstrap | None:
        view = self._view(shard_id, replica_id)
        if view is None or view.bootstrap is None:
            return None
        copy = pb.Bootstrap()
        copy.CopyFrom(view.bootstrap)
        return copy

    def list_node_info(self) -> list[tuple[int, int]]:
        if self._closed:
            raise StoreClosedError(f"store at {self.path} is closed")
        return sorted(key for key, view in list(self._views.items()) if view.bootstrap)

    def _read_error(self, view: ReplicaView, error: Exception) -> LogDBError:
        if self._closed:
            return StoreClosedError(f"store at {self.path} is closed")
        text = str(error)
        if "Corruption" in text:
            return CorruptionError(f"{view.name}: read failed: {text}", [view_key(view)])
        return LogDBError(f"{view.name}: read failed: {text}")

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        with self._write_lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._db.close()
            except Exception as e:
                if self._failed is None:
                    raise WriteError(f"closing store at {self.path} failed: {e}") from None

    def __enter__(self) -> RocksLogDB:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def view_key(view: ReplicaView) -> ReplicaKey:
    return (view.shard_id, view.replica_id)
