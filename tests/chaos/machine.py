"""The replicated object of the chaos suite, in the three state machine kinds: a map of
registers, strings and sets.

Commands are compact JSON so a history line and a log entry say the same thing:
  {"op": "put", "k", "v"}           -> Result(0)
  {"op": "cas", "k", "old", "v"}    -> Result(1) if the value was `old` (None: absent)
  {"op": "delete", "k"}             -> Result(0)
  {"op": "append", "k", "v"}        -> Result(len of the new string)
  {"op": "add", "k", "v"}           -> Result(size of the set)
Queries: ("get", k) -> value or None | ("dump", prefix) -> {key: value} of the keys
starting with `prefix` (sets as sorted lists).

Rules:
- One meaning for every kind (`apply_command`, `answer`): a shard's replicas all run one
  kind, and a run may mix kinds across shards.
- Deterministic and hashable (IHash): replicas that applied the same entries have equal
  hashes, which is what the suite compares after every run. The hash covers the user
  state only, never bookkeeping such as the on-disk kind's applied index.
- `ChaosDiskKV` keeps its own durable data (Raft thesis 5.2): each `update` batch is
  one SQLite transaction holding the changed keys and the index of the batch's last
  entry, so after a SIGKILL the data sits at one entry boundary and `open` returns
  exactly the index it holds.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, BinaryIO

from statemachine import (
    Entry,
    IConcurrentStateMachine,
    IHash,
    IOnDiskStateMachine,
    IStateMachine,
    Result,
    SnapshotFile,
    SnapshotFileCollection,
)

KINDS = ("regular", "concurrent", "on-disk")


def command(op: str, key: str, value: Any = None, old: Any = None) -> bytes:
    doc: dict[str, Any] = {"op": op, "k": key}
    if value is not None:
        doc["v"] = value
    if op == "cas":
        doc["old"] = old
    return json.dumps(doc, separators=(",", ":")).encode()


def apply_command(data: dict[str, Any], cmd: bytes) -> tuple[int, str]:
    """Apply one command to `data`; (result value, the key it touched)."""
    doc = json.loads(cmd)
    op, key = doc["op"], doc["k"]
    if op == "put":
        data[key] = doc["v"]
    elif op == "cas":
        if data.get(key) != doc["old"]:
            return 0, key
        data[key] = doc["v"]
        return 1, key
    elif op == "delete":
        data.pop(key, None)
    elif op == "append":
        data[key] = data.get(key, "") + doc["v"]
        return len(data[key]), key
    elif op == "add":
        members = data.setdefault(key, [])
        members.append(doc["v"])
        return len(members), key
    else:
        raise ValueError(f"unknown command {op!r}")
    return 0, key


def answer(data: dict[str, Any], query: Any) -> Any:
    kind = query[0]
    if kind == "get":
        value = data.get(query[1])
        return sorted(value) if isinstance(value, list) else value
    if kind == "dump":
        prefix = query[1]
        return {
            k: sorted(v) if isinstance(v, list) else v
            for k, v in data.items()
            if k.startswith(prefix)
        }
    raise ValueError(f"unknown query {query!r}")


def state_hash(data: dict[str, Any]) -> int:
    encoded = json.dumps(data, sort_keys=True).encode()
    return int.from_bytes(hashlib.blake2b(encoded, digest_size=8).digest(), "big")


class ChaosKV(IStateMachine, IHash):
    """The regular kind: one entry per `update`, never concurrent with `lookup`."""

    def __init__(self, shard_id: int = 0, replica_id: int = 0) -> None:
        self.data: dict[str, Any] = {}

    def update(self, entry: Entry) -> Result:
        return Result(apply_command(self.data, entry.cmd)[0])

    def lookup(self, query: Any) -> Any:
        return answer(self.data, query)

    def save_snapshot(
        self, writer: BinaryIO, files: SnapshotFileCollection, stopped: Callable[[], bool]
    ) -> None:
        writer.write(json.dumps(self.data, sort_keys=True).encode())

    def recover_from_snapshot(
        self, reader: BinaryIO, files: list[SnapshotFile], stopped: Callable[[], bool]
    ) -> None:
        self.data = json.loads(reader.read())

    def get_hash(self) -> int:
        return state_hash(self.data)


class ChaosConcurrentKV(IConcurrentStateMachine, IHash):
    """The concurrent kind: batches of entries; `lookup` and `save_snapshot` run while
    `update` does, so reads see the state between two entries, never inside one."""

    def __init__(self, shard_id: int = 0, replica_id: int = 0) -> None:
        self.data: dict[str, Any] = {}
        self._lock = threading.Lock()

    def update(self, entries: list[Entry]) -> list[Entry]:
        for e in entries:
            with self._lock:
                e.result = Result(apply_command(self.data, e.cmd)[0])
        return entries

    def lookup(self, query: Any) -> Any:
        with self._lock:
            return answer(self.data, query)

    def prepare_snapshot(self) -> Any:
        with self._lock:
            return json.dumps(self.data, sort_keys=True).encode()

    def save_snapshot(
        self,
        ctx: Any,
        writer: BinaryIO,
        files: SnapshotFileCollection,
        stopped: Callable[[], bool],
    ) -> None:
        writer.write(ctx)

    def recover_from_snapshot(
        self, reader: BinaryIO, files: list[SnapshotFile], stopped: Callable[[], bool]
    ) -> None:
        data = json.loads(reader.read())
        with self._lock:
            self.data = data

    def get_hash(self) -> int:
        with self._lock:
            return state_hash(self.data)


class ChaosDiskKV(IOnDiskStateMachine, IHash):
    """The on-disk kind: SQLite in WAL mode, one transaction per `update` batch (see
    the module rules). Reads are served from a copy in memory kept in step with it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.data: dict[str, Any] = {}
        self.index = 0
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    @staticmethod
    def factory(root: str) -> Callable[[int, int], ChaosDiskKV]:
        """`create` for start_on_disk_replica: one database per shard and replica id."""

        def create(shard_id: int, replica_id: int) -> ChaosDiskKV:
            return ChaosDiskKV(database_path(root, shard_id, replica_id))

        return create

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError(f"{self.path} is not open")
        return self._db

    def open(self, stopped: Callable[[], bool]) -> int:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        # Commits reach the OS at once (a SIGKILL keeps them); `sync` makes them durable.
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER)")
        self._db = db
        row = db.execute("SELECT value FROM meta WHERE name = 'applied'").fetchone()
        with self._lock:
            self.data = {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM kv")}
            self.index = int(row[0]) if row else 0
        return self.index

    def update(self, entries: list[Entry]) -> list[Entry]:
        if not entries:
            return entries
        touched: set[str] = set()
        with self._lock:
            for e in entries:
                value, key = apply_command(self.data, e.cmd)
                e.result = Result(value)
                touched.add(key)
            rows = [(k, self.data.get(k)) for k in sorted(touched)]
            self.index = entries[-1].index
        self._write(rows, self.index, replace=False)
        return entries

    def _write(self, rows: list[tuple[str, Any]], index: int, replace: bool) -> None:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            if replace:
                db.execute("DELETE FROM kv")
            db.executemany("DELETE FROM kv WHERE key = ?", [(k,) for k, v in rows if v is None])
            db.executemany(
                "INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)",
                [(k, json.dumps(v)) for k, v in rows if v is not None],
            )
            db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES ('applied', ?)", (index,))
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def lookup(self, query: Any) -> Any:
        with self._lock:
            return answer(self.data, query)

    def sync(self) -> None:
        self.db.execute("PRAGMA wal_checkpoint(FULL)")

    def prepare_snapshot(self) -> Any:
        with self._lock:
            return json.dumps({"data": self.data, "index": self.index}, sort_keys=True).encode()

    def save_snapshot(self, ctx: Any, writer: BinaryIO, stopped: Callable[[], bool]) -> None:
        writer.write(ctx)

    def recover_from_snapshot(self, reader: BinaryIO, stopped: Callable[[], bool]) -> None:
        saved = json.loads(reader.read())
        data, index = saved["data"], int(saved["index"])
        self._write(sorted(data.items()), index, replace=True)
        with self._lock:
            self.data, self.index = data, index

    def get_hash(self) -> int:
        with self._lock:
            return state_hash(self.data)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def database_path(root: str, shard_id: int, replica_id: int) -> str:
    return os.path.join(root, f"shard-{shard_id}-replica-{replica_id}.sqlite")


def remove_database(root: str, shard_id: int, replica_id: int) -> None:
    """Delete a removed replica's data (SQLite keeps up to three files)."""
    path = database_path(root, shard_id, replica_id)
    for suffix in ("", "-wal", "-shm"):
        try:
            os.remove(path + suffix)
        except FileNotFoundError:
            pass
