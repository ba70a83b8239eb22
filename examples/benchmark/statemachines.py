"""The benchmark's state machines, one per `--sm` kind, each as cheap as its kind allows,
so the figures measure the library rather than the application.

- regular: an IStateMachine counting entries and bytes (Dragonboat's benchmark counter).
- concurrent: an IConcurrentStateMachine holding a dict, key = the command's first
  8 bytes (clients reuse a bounded set of keys, so it stays small).
- ondisk: an IOnDiskStateMachine on its own RocksDB database per replica: each batch is
  one unsynced WriteBatch holding the values and the applied index (RocksDB's WAL keeps
  the order; `sync` flushes it), as a real on-disk machine must.

A query is a key (bytes); regular answers its entry count whatever the key.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable
from typing import Any, BinaryIO

from rocksdict import Options, Rdict, WriteBatch, WriteOptions

from statemachine import (
    Entry,
    IConcurrentStateMachine,
    IOnDiskStateMachine,
    IStateMachine,
    Result,
    SnapshotFile,
    SnapshotFileCollection,
)

KEY_BYTES = 8
_U64 = struct.Struct(">Q")
_APPLIED = b"\x00applied"


class Counter(IStateMachine):
    def __init__(self, shard_id: int, replica_id: int) -> None:
        self.count = 0
        self.bytes = 0

    def update(self, entry: Entry) -> Result:
        self.count += 1
        self.bytes += len(entry.cmd)
        return Result(value=self.count)

    def lookup(self, query: Any) -> Any:
        return self.count

    def save_snapshot(
        self, writer: BinaryIO, files: SnapshotFileCollection, stopped: Callable[[], bool]
    ) -> None:
        writer.write(_U64.pack(self.count) + _U64.pack(self.bytes))

    def recover_from_snapshot(
        self, reader: BinaryIO, files: list[SnapshotFile], stopped: Callable[[], bool]
    ) -> None:
        data = reader.read()
        self.count, self.bytes = _U64.unpack_from(data)[0], _U64.unpack_from(data, 8)[0]


class MemoryKV(IConcurrentStateMachine):
    def __init__(self, shard_id: int, replica_id: int) -> None:
        self.data: dict[bytes, bytes] = {}

    def update(self, entries: list[Entry]) -> list[Entry]:
        data = self.data
        for entry in entries:
            cmd = entry.cmd
            data[cmd[:KEY_BYTES]] = cmd
            entry.result = Result(value=len(cmd))
        return entries

    def lookup(self, query: Any) -> Any:
        return self.data.get(query)

    def prepare_snapshot(self) -> Any:
        return dict(self.data)

    def save_snapshot(
        self,
        ctx: Any,
        writer: BinaryIO,
        files: SnapshotFileCollection,
        stopped: Callable[[], bool],
    ) -> None:
        writer.write(json.dumps({k.hex(): v.hex() for k, v in ctx.items()}).encode())

    def recover_from_snapshot(
        self, reader: BinaryIO, files: list[SnapshotFile], stopped: Callable[[], bool]
    ) -> None:
        loaded = json.loads(reader.read())
        self.data = {bytes.fromhex(k): bytes.fromhex(v) for k, v in loaded.items()}


class DiskKV(IOnDiskStateMachine):
    def __init__(self, directory: str, shard_id: int, replica_id: int) -> None:
        self.path = os.path.join(directory, f"sm-{shard_id}-{replica_id}")
        self.db: Rdict | None = None
        self._unsynced = WriteOptions()
        self._unsynced.sync = False

    def _open_db(self) -> Rdict:
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        return Rdict(self.path, options)

    def open(self, stopped: Callable[[], bool]) -> int:
        self.db = self._open_db()
        applied = self.db.get(_APPLIED)
        return 0 if applied is None else int(_U64.unpack(applied)[0])

    def update(self, entries: list[Entry]) -> list[Entry]:
        assert self.db is not None
        batch = WriteBatch(raw_mode=True)
        for entry in entries:
            cmd = entry.cmd
            batch.put(cmd[:KEY_BYTES], cmd)
            entry.result = Result(value=len(cmd))
        batch.put(_APPLIED, _U64.pack(entries[-1].index))
        self.db.write(batch, self._unsynced)
        return entries

    def lookup(self, query: Any) -> Any:
        assert self.db is not None
        return self.db.get(query)

    def sync(self) -> None:
        assert self.db is not None
        self.db.flush_wal(True)

    def prepare_snapshot(self) -> Any:
        assert self.db is not None
        return [(k, v) for k, v in self.db.items()]

    def save_snapshot(self, ctx: Any, writer: BinaryIO, stopped: Callable[[], bool]) -> None:
        for key, value in ctx:
            writer.write(_U64.pack(len(key)) + key + _U64.pack(len(value)) + value)

    def recover_from_snapshot(self, reader: BinaryIO, stopped: Callable[[], bool]) -> None:
        assert self.db is not None
        data = reader.read()
        batch = WriteBatch(raw_mode=True)
        for key, _ in self.db.items():
            batch.delete(key)
        at = 0
        while at < len(data):
            (size,) = _U64.unpack_from(data, at)
            key = data[at + 8 : at + 8 + size]
            at += 8 + size
            (size,) = _U64.unpack_from(data, at)
            batch.put(key, data[at + 8 : at + 8 + size])
            at += 8 + size
        synced = WriteOptions()
        synced.sync = True
        self.db.write(batch, synced)

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None
