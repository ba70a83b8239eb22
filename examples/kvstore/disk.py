"""STORE=disk: an IOnDiskStateMachine on RocksDB (rocksdict), one database per shard.

Rules (Raft thesis 5.2, the state machine keeps its own data):
- Every `update` batch is one RocksDB WriteBatch holding the values, the index of the
  last entry and the state digest, so after a crash the database is at one entry
  boundary and `open` returns exactly the index it holds. Batches are written without
  fsync; RocksDB's WAL keeps them in order and `sync` makes them durable.
- A snapshot is a RocksDB checkpoint (hard links, taken in `prepare_snapshot` while
  updates wait), streamed later from its own read-only copy while updates go on.
  rocksdict's own snapshot iterators do not read at their snapshot, so they are not used.
- `recover_from_snapshot` reads the whole stream and checks it before one atomic batch
  replaces the data: a damaged snapshot leaves the old state in place.
- `lookup` may run at any time on another thread; RocksDB reads are thread-safe.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import struct
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from rocksdict import (
    AccessType,
    Checkpoint,
    Options,
    Rdict,
    ReadOptions,
    WriteBatch,
    WriteOptions,
)

from examples.kvstore.commands import add_digest, execute, remove_digest
from examples.kvstore.snapshot import SnapshotReader, write_snapshot
from statemachine import Entry, IHash, IOnDiskStateMachine

_DATA = b"k/"  # k/<utf-8 key> -> canonical JSON
_DATA_END = b"k0"  # the first key after every k/ key
_APPLIED = b"m/applied"
_DIGEST = b"m/digest"
_U64 = struct.Struct(">Q")
_MiB = 1024 * 1024


def _options() -> Options:
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    options.set_write_buffer_size(8 * _MiB)
    options.set_max_write_buffer_number(2)
    options.set_keep_log_file_num(2)
    options.set_max_log_file_size(1 * _MiB)
    return options


class DiskKV(IOnDiskStateMachine, IHash):
    def __init__(self, directory: str, shard_id: int, replica_id: int) -> None:
        self.directory = directory
        self.shard_id = shard_id
        self.replica_id = replica_id
        self._db: Rdict | None = None
        self._digest = 0
        self._checkpoints = itertools.count()
        self._no_sync = WriteOptions()
        self._no_sync.sync = False
        self._sync = WriteOptions()
        self._sync.sync = True

    @staticmethod
    def factory(root: str) -> Callable[[int, int], DiskKV]:
        """`create` for start_on_disk_replica: shard N lives in `root`/shard-N."""

        def create(shard_id: int, replica_id: int) -> DiskKV:
            return DiskKV(os.path.join(root, f"shard-{shard_id}"), shard_id, replica_id)

        return create

    def _checkpoint_glob(self) -> str:
        return f"{glob.escape(self.directory)}.checkpoint-*"

    @property
    def db(self) -> Rdict:
        if self._db is None:
            raise RuntimeError(f"the store {self.directory} is not open")
        return self._db

    def open(self, stopped: Callable[[], bool]) -> int:
        os.makedirs(os.path.dirname(self.directory) or ".", exist_ok=True)
        for leftover in glob.glob(self._checkpoint_glob()):
            shutil.rmtree(leftover, ignore_errors=True)  # a snapshot cut by a crash
        self._db = Rdict(self.directory, _options())
        self._digest = _read_u64(self._db, _DIGEST)
        return _read_u64(self._db, _APPLIED)

    def update(self, entries: list[Entry]) -> list[Entry]:
        if not entries:
            return entries
        db = self.db
        batch = WriteBatch(raw_mode=True)
        written: dict[bytes, bytes | None] = {}  # this batch's writes, read before the db's

        def current(key: str) -> bytes | None:
            raw = key.encode("utf-8")
            if raw in written:
                return written[raw]
            value: bytes | None = db.get(_DATA + raw)
            return value

        digest = self._digest
        for entry in entries:
            outcome = execute(entry.cmd, current)
            if outcome.write:
                key = outcome.key.encode("utf-8")
                old = current(outcome.key)
                if old is not None:
                    digest = remove_digest(digest, key, old)
                if outcome.value is None:
                    batch.delete(_DATA + key)
                else:
                    batch.put(_DATA + key, outcome.value)
                    digest = add_digest(digest, key, outcome.value)
                written[key] = outcome.value
            entry.result = outcome.result
        batch.put(_APPLIED, _U64.pack(entries[-1].index))
        batch.put(_DIGEST, _U64.pack(digest))
        db.write(batch, self._no_sync)
        self._digest = digest
        return entries

    def lookup(self, query: Any) -> Any:
        """The canonical JSON stored under the key `query` (a str), or None."""
        if not isinstance(query, str):
            raise TypeError(f"a lookup takes a key (str), not {type(query).__name__}")
        value: bytes | None = self.db.get(_DATA + query.encode("utf-8"))
        return value

    def get_hash(self) -> int:
        return self._digest

    def sync(self) -> None:
        self.db.flush_wal(True)

    def prepare_snapshot(self) -> Any:
        path = f"{self.directory}.checkpoint-{os.getpid()}-{next(self._checkpoints)}"
        shutil.rmtree(path, ignore_errors=True)
        Checkpoint(self.db).create_checkpoint(path)
        return path

    def save_snapshot(self, ctx: Any, writer: BinaryIO, stopped: Callable[[], bool]) -> None:
        path = str(ctx)
        try:
            copy = Rdict(path, Options(raw_mode=True), access_type=AccessType.read_only())
            try:
                index = _read_u64(copy, _APPLIED)
                write_snapshot(writer, index, _scan(copy), stopped)
            finally:
                copy.close()
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def recover_from_snapshot(self, reader: BinaryIO, stopped: Callable[[], bool]) -> None:
        snapshot = SnapshotReader(reader, stopped)
        batch = WriteBatch(raw_mode=True)
        batch.delete_range(_DATA, _DATA_END)
        for key, value in snapshot.items():
            batch.put(_DATA + key, value)
        batch.put(_APPLIED, _U64.pack(snapshot.index))
        batch.put(_DIGEST, _U64.pack(snapshot.digest))
        self.db.write(batch, self._sync)
        self._digest = snapshot.digest

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _read_u64(db: Rdict, key: bytes) -> int:
    raw = db.get(key)
    if raw is None:
        return 0
    if len(raw) != _U64.size:
        raise ValueError(f"{key!r} holds {len(raw)} bytes, not a u64: the store is damaged")
    value: int = _U64.unpack(raw)[0]
    return value


def _scan(db: Rdict) -> Iterator[tuple[bytes, bytes]]:
    options = ReadOptions()
    options.set_iterate_upper_bound(_DATA_END)
    it = db.iter(options)
    try:
        it.seek(_DATA)
        while it.valid():
            yield it.key()[len(_DATA) :], it.value()
            it.next()
        it.status()
    finally:
        del it  # an iterator left alive keeps the database open
