"""The replicated SQL state machine: every database of a cluster, on one replica.

Rules:
- An on-disk state machine (IOnDiskStateMachine): the SQLite files are the state; each
  file records the last entry it holds (see database.py), so a restart replays only what
  the files lack. `open` returns the lowest of those, raised to the index that `sync`
  last made durable: entries up to that index are safe in every file whatever it says.
- A batch of committed entries is one SQLite transaction per database touched: entries
  share commits, and the Raft log's fsync is the only one on the write path.
- Layout: `root/CURRENT` names the state directory in use (`state-<index>`) holding one
  file per database and `SYNCED`; a snapshot is recovered into a new directory that
  `CURRENT` is switched to atomically, so a crash leaves the old state or the new one.
- Snapshots are the database files, copied page by page with SQLite's backup API from a
  read transaction opened while no entry is being applied (a consistent cut), streamed
  in a simple length-prefixed format.
- Everything that touches a write connection holds `_lock`: apply, speculation (running an
  open transaction ahead), sync, digests. Reads use their own connections and no lock.
"""

from __future__ import annotations

import os
import shutil
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import apsw

from nodehost.sqlite.command import (
    Command,
    CommandError,
    CommandKind,
    CommandResult,
    Outcome,
    Statement,
    StatementResult,
    decode_command,
    encode_batch_results,
    encode_result,
)
from nodehost.sqlite.database import (
    LocalFailure,
    WriteDatabase,
    check_name,
    file_name,
    name_of_file,
)
from nodehost.sqlite.reads import ReadPool
from statemachine import Entry, IHash, IOnDiskStateMachine, Result, SnapshotStopped

_MAGIC = b"NHSQLITE-SNAPSHOT-1\n"
_U64 = struct.Struct(">Q")
_CHUNK = 1 << 20
MEMBERS_DATABASE = "\x00members"  # reserved (NUL is refused in user names)


@dataclass(slots=True)
class Speculate:
    """lookup query: run an open transaction ahead (see WriteDatabase.speculate)."""

    owner: object
    command: Command


@dataclass(slots=True)
class Release:
    """lookup query: the transaction `owner` ended."""

    owner: object
    database: str


@dataclass(slots=True)
class Read:
    """lookup query: read-only statements against one database."""

    database: str
    statements: list[Statement] = field(default_factory=list)


MembersApply = Callable[[WriteDatabase, Command, int], CommandResult]


class SQLStateMachine(IOnDiskStateMachine, IHash):
    def __init__(self, root: Path, members: MembersApply | None = None) -> None:
        self.root = Path(root)
        self._members_apply = members
        self._lock = threading.RLock()
        self._state_dir = self.root / "state-0"
        self._databases: dict[str, WriteDatabase] = {}
        self._applied = 0
        self.opened_index = (
            0  # what `open` found in the files: entries up to it are not applied again
        )
        self._closed = False
        self.reads = ReadPool(lambda: self._state_dir)

    @property
    def state_dir(self) -> Path:
        return self._state_dir

    @property
    def applied_index(self) -> int:
        return self._applied

    # ------------------------------------------------------------------ open

    def open(self, stopped: Callable[[], bool]) -> int:
        with self._lock:
            self.root.mkdir(parents=True, exist_ok=True)
            current = self.root / "CURRENT"
            if current.exists():
                name = current.read_text().strip()
                if not name.startswith("state-") or "/" in name:
                    raise LocalFailure(f"{current}: names no state directory ({name!r})")
                self._state_dir = self.root / name
                if not self._state_dir.is_dir():
                    raise LocalFailure(f"{current} names {name}, which is missing")
            else:
                self._state_dir = self.root / "state-0"
                self._state_dir.mkdir(exist_ok=True)
                _write_durably(current, "state-0\n")
            self._remove_leftovers()
            synced = self._read_synced()
            lowest: int | None = None
            for file in sorted(os.listdir(self._state_dir)):
                held = name_of_file(file)
                if held is None:
                    continue
                database = WriteDatabase(self._state_dir, held)
                _ = database.connection  # reads its applied index
                self._databases[held] = database
                holds = max(database.complete_through, synced)
                lowest = holds if lowest is None else min(lowest, holds)
            self._applied = synced if lowest is None else lowest
            self.opened_index = self._applied
            return self._applied

    def _remove_leftovers(self) -> None:
        for path in self.root.iterdir():
            if path.is_dir() and path != self._state_dir and path.name.startswith("state-"):
                shutil.rmtree(path, ignore_errors=True)
        for path in self._state_dir.iterdir():
            if path.name.startswith("snapshot-"):
                path.unlink(missing_ok=True)

    def _read_synced(self) -> int:
        path = self._state_dir / "SYNCED"
        if not path.exists():
            return 0
        text = path.read_text().strip()
        if not text.isdigit():
            raise LocalFailure(f"{path}: {text!r} is not an index")
        return int(text)

    # ------------------------------------------------------------------ apply

    def update(self, entries: list[Entry]) -> list[Entry]:
        with self._lock:
            touched: list[WriteDatabase] = []
            try:
                for entry in entries:
                    entry.result = self._apply(entry, touched)
                if entries:
                    for database in touched:
                        database.end_batch()
                    self._applied = entries[-1].index
            except BaseException:
                # A failure of this machine: nothing of the batch may stay half applied.
                for database in touched:
                    database.close()
                raise
            return entries

    def _apply(self, entry: Entry, touched: list[WriteDatabase]) -> Result:
        try:
            command = decode_command(entry.cmd)
        except CommandError as exc:
            return _result(CommandResult(Outcome.REJECTED, message=f"malformed command: {exc}"))
        if command.kind is CommandKind.BATCH:
            encoded = [
                encode_result(self._apply_command(part, entry.index, touched))
                for part in command.batch
            ]
            return Result(value=int(Outcome.COMMITTED), data=encode_batch_results(encoded))
        return _result(self._apply_command(command, entry.index, touched))

    def _apply_command(
        self, command: Command, index: int, touched: list[WriteDatabase]
    ) -> CommandResult:
        try:
            if command.kind is CommandKind.MEMBERS:
                name = MEMBERS_DATABASE
            else:
                name = check_name(command.database)
                assert isinstance(name, str)
                if not command.statements and not command.client_id:
                    raise CommandError("a command without statements")
        except (CommandError, ValueError) as exc:
            return CommandResult(Outcome.REJECTED, message=f"malformed command: {exc}")
        database = self._database(name)
        if index <= database.complete_through:
            return CommandResult(Outcome.COMMITTED)  # in the file before a restart
        if database not in touched:
            database.begin_batch()
            touched.append(database)
        database.note_applied(index)
        if command.kind is CommandKind.MEMBERS:
            if self._members_apply is None:
                return CommandResult(Outcome.REJECTED, message="no member table here")
            return self._members_apply(database, command, index)
        return database.apply(command, index)

    def _database(self, name: str) -> WriteDatabase:
        database = self._databases.get(name)
        if database is None:
            database = WriteDatabase(self._state_dir, name)
            self._databases[name] = database
        return database

    # ------------------------------------------------------------------ reads

    def lookup(self, query: Any) -> Any:
        if isinstance(query, Read):
            return [self.reads.run(query.database, s) for s in query.statements]
        if isinstance(query, Speculate):
            with self._lock:
                self._check_open()
                return self._database(query.command.database).speculate(query.owner, query.command)
        if isinstance(query, Release):
            with self._lock:
                database = self._databases.get(query.database)
                if database is not None and not self._closed:
                    database.release_owner(query.owner)
            return None
        raise TypeError(f"unknown query {type(query).__name__}")

    def database_names(self) -> list[str]:
        with self._lock:
            return sorted(
                name
                for name, database in self._databases.items()
                if name != MEMBERS_DATABASE and database.exists()
            )

    def members_database(self) -> WriteDatabase:
        with self._lock:
            return self._database(MEMBERS_DATABASE)

    def run_locked(self, work: Callable[[], Any]) -> Any:
        with self._lock:
            self._check_open()
            return work()

    def _check_open(self) -> None:
        if self._closed:
            raise LocalFailure("the state machine is closed")

    def get_hash(self) -> int:
        """A digest of every database's pages: equal on replicas at the same index."""
        import hashlib

        with self._lock:
            digest = hashlib.blake2b(digest_size=8)
            for name in sorted(self._databases):
                database = self._databases[name]
                if not database.exists():
                    continue
                digest.update(name.encode("utf-8", "surrogatepass") + b"\x00")
                digest.update(database.digest())
            return int.from_bytes(digest.digest(), "big")

    # ------------------------------------------------------------------ durability

    def sync(self) -> None:
        with self._lock:
            if self._closed and not self._databases:
                return
            for database in self._databases.values():
                database.sync()
            _write_durably(self._state_dir / "SYNCED", f"{self._applied}\n")

    # ------------------------------------------------------------------ snapshots

    def prepare_snapshot(self) -> Any:
        """Open a read transaction on every database: the cut the snapshot will copy."""
        with self._lock:
            pinned: list[tuple[str, apsw.Connection]] = []
            for name in sorted(self._databases):
                database = self._databases[name]
                if not database.exists():
                    continue
                database.drop_speculation()
                connection = apsw.Connection(str(database.path), flags=apsw.SQLITE_OPEN_READWRITE)
                connection.execute("BEGIN")
                connection.execute("SELECT count(*) FROM sqlite_schema").fetchall()
                pinned.append((name, connection))
            return (self._applied, pinned)

    def save_snapshot(self, ctx: Any, writer: BinaryIO, stopped: Callable[[], bool]) -> None:
        index, pinned = ctx
        try:
            writer.write(_MAGIC)
            writer.write(_U64.pack(index))
            writer.write(_U64.pack(len(pinned)))
            for number, (name, connection) in enumerate(pinned):
                if stopped():
                    raise SnapshotStopped()
                copy = self._state_dir / f"snapshot-{os.getpid()}-{threading.get_ident()}-{number}"
                try:
                    target = apsw.Connection(str(copy))
                    try:
                        with target.backup("main", connection, "main") as backup:
                            backup.step(-1)
                    finally:
                        target.close()
                    # The backup bumps the copy's schema cookie (to warn its other
                    # connections); put the source's back so the copy is byte-identical.
                    cookie = connection.execute("PRAGMA schema_version").fetchall()[0][0]
                    with open(copy, "r+b") as patched:
                        patched.seek(40)
                        patched.write(int(cookie).to_bytes(4, "big"))
                    encoded = name.encode("utf-8", "surrogatepass")
                    writer.write(_U64.pack(len(encoded)))
                    writer.write(encoded)
                    writer.write(_U64.pack(copy.stat().st_size))
                    with open(copy, "rb") as source:
                        while chunk := source.read(_CHUNK):
                            writer.write(chunk)
                finally:
                    copy.unlink(missing_ok=True)
        finally:
            for _, connection in pinned:
                connection.close()

    def recover_from_snapshot(self, reader: BinaryIO, stopped: Callable[[], bool]) -> None:
        if _read_exact(reader, len(_MAGIC)) != _MAGIC:
            raise LocalFailure("not a nodehost SQL snapshot")
        index = _U64.unpack(_read_exact(reader, 8))[0]
        count = _U64.unpack(_read_exact(reader, 8))[0]
        fresh = self.root / f"state-{index}-{os.getpid()}-recovering"
        shutil.rmtree(fresh, ignore_errors=True)
        fresh.mkdir(parents=True)
        try:
            for _ in range(count):
                if stopped():
                    raise SnapshotStopped()
                size = _U64.unpack(_read_exact(reader, 8))[0]
                if size > 4096:
                    raise LocalFailure("snapshot: a database name is too long")
                name = _read_exact(reader, size).decode("utf-8", "surrogatepass")
                if name != MEMBERS_DATABASE:
                    check_name(name)
                length = _U64.unpack(_read_exact(reader, 8))[0]
                path = fresh / file_name(name)
                with open(path, "wb") as out:
                    remaining = length
                    while remaining:
                        chunk = reader.read(min(_CHUNK, remaining))
                        if not chunk:
                            raise LocalFailure("snapshot: truncated database image")
                        out.write(chunk)
                        remaining -= len(chunk)
                    out.flush()
                    os.fsync(out.fileno())
            _write_durably(fresh / "SYNCED", f"{index}\n")
            final = self.root / f"state-{index}"
            with self._lock:
                for database in self._databases.values():
                    database.close()
                self._databases.clear()
                if final.exists():
                    shutil.rmtree(final)
                os.rename(fresh, final)
                _fsync_directory(self.root)
                previous = self._state_dir
                _write_durably(self.root / "CURRENT", f"{final.name}\n")
                self._state_dir = final
                self.reads.invalidate()
                for file in sorted(os.listdir(final)):
                    held = name_of_file(file)
                    if held is not None:
                        database = WriteDatabase(final, held)
                        _ = database.connection
                        self._databases[held] = database
                self._applied = index
                if previous != final:
                    shutil.rmtree(previous, ignore_errors=True)
        except BaseException:
            shutil.rmtree(fresh, ignore_errors=True)
            raise

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self.sync()  # a clean stop restarts without applying anything again
            except (OSError, apsw.Error, LocalFailure):
                pass  # the next open replays from what is durable
            for database in self._databases.values():
                try:
                    database.close()
                except apsw.Error:
                    pass


def _result(result: CommandResult) -> Result:
    return Result(value=int(result.outcome), data=encode_result(result))


def _read_exact(reader: BinaryIO, n: int) -> bytes:
    data = reader.read(n)
    if len(data) != n:
        raise LocalFailure("snapshot: truncated")
    return data


def _write_durably(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = [
    "MEMBERS_DATABASE",
    "Read",
    "Release",
    "SQLStateMachine",
    "Speculate",
    "StatementResult",
]
