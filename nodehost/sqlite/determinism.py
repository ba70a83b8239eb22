"""One value cluster-wide for SQL that SQLite would answer from the machine it runs on.

Design (statement replication with deterministic functions): replicas run the same SQL on
the same state, so anything SQLite takes from outside the database must come from the
replicated command instead:
- the clock ('now' in date and time functions, CURRENT_TIMESTAMP/DATE/TIME, column
  DEFAULTs and triggers that use them): SQLite asks its VFS for the time; the write
  connections open their files through `DeterministicVFS`, which answers with the
  timestamp of the command being applied (the proposer's clock reading, in ms);
- `random()` and `randomblob(N)`: replaced on write connections by functions drawing from
  a generator seeded with the command's seed, in statement order;
- `changes()`, `total_changes()` and `last_insert_rowid()`: connection counters that
  would carry over from earlier commands (and start again at 0 after a restart): every
  command starts them at 0 (see `begin_command`; `changes()` answers 0 until one of the
  command's own INSERT/UPDATE/DELETE statements has completed).
Other built-ins are pure. Known gaps, documented in the README: the 'localtime' and
'utc' modifiers use each member's time zone (run members with the same TZ), and a rowid
table whose largest rowid is 2**63-1 makes SQLite choose new rowids at random.

Rules: nothing here reads the real clock or a random source while a command is applied;
the context of the command being applied is per thread (`current`).
"""

from __future__ import annotations

import hashlib
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any

import apsw

VFS_NAME = "nodehost-deterministic"
# Julian day of the Unix epoch, in ms, as SQLite computes 'now' (days * 86400000).
_UNIX_EPOCH_JULIAN_MS = 210_866_760_000_000
_MAX_BLOB = 1_000_000_000  # SQLite's default SQLITE_MAX_LENGTH


@dataclass(slots=True)
class CommandContext:
    """The inputs of the command being applied (or run ahead) on this thread."""

    timestamp_ms: int
    seed: int
    draws: int = 0
    total_changes_start: int = 0
    statements_changed: bool = False  # a DML statement of this command has completed

    def draw(self, n: int) -> bytes:
        """The next `n` bytes of the command's random stream."""
        self.draws += 1
        key = struct.pack(">QQ", self.seed & 0xFFFF_FFFF_FFFF_FFFF, self.draws)
        return hashlib.shake_256(key).digest(n)


_local = threading.local()


def current() -> CommandContext | None:
    context: CommandContext | None = getattr(_local, "context", None)
    return context


def set_current(context: CommandContext | None) -> None:
    _local.context = context


class DeterministicVFS(apsw.VFS):
    """The default VFS, except that the time is the applied command's timestamp.

    File access is inherited from the base VFS unchanged. Outside a command (no context
    on the thread) the real clock answers, so a write connection behaves as usual.
    """

    def __init__(self) -> None:
        super().__init__(VFS_NAME, base="")

    def xCurrentTimeInt64(self) -> int:
        context = current()
        if context is None:
            return int(time.time() * 1000) + _UNIX_EPOCH_JULIAN_MS
        return context.timestamp_ms + _UNIX_EPOCH_JULIAN_MS

    def xCurrentTime(self) -> float:
        return self.xCurrentTimeInt64() / 86_400_000.0


_vfs_lock = threading.Lock()
_vfs: DeterministicVFS | None = None


def vfs_name() -> str:
    """Register the VFS once per process; returns its name for apsw.Connection(vfs=...)."""
    global _vfs
    with _vfs_lock:
        if _vfs is None:
            _vfs = DeterministicVFS()
    return VFS_NAME


def _random() -> int:
    context = current()
    if context is None:
        raise apsw.SQLError("random() outside a replicated command")
    value: int = struct.unpack(">q", context.draw(8))[0]
    return value


def _randomblob(n: object) -> bytes:
    context = current()
    if context is None:
        raise apsw.SQLError("randomblob() outside a replicated command")
    size = int(n) if isinstance(n, int | float) else 0
    if size < 1:
        size = 1
    if size > _MAX_BLOB:
        raise apsw.TooBigError("string or blob too big")
    return context.draw(size)


def install(connection: apsw.Connection) -> None:
    """Make a write connection deterministic (its file must use `vfs_name()`)."""

    def total_changes() -> int:
        context = current()
        start = context.total_changes_start if context is not None else 0
        return connection.total_changes() - start

    def changes() -> int:
        context = current()
        if context is not None and not context.statements_changed:
            return 0  # as on a fresh connection: nothing before this command counts
        return connection.changes()

    functions: list[tuple[str, Any, int]] = [
        ("changes", changes, 0),
        ("random", _random, 0),
        ("randomblob", _randomblob, 1),
        ("total_changes", total_changes, 0),
    ]
    for name, function, arguments in functions:
        connection.create_scalar_function(name, function, arguments)


def begin_command(connection: apsw.Connection, context: CommandContext) -> None:
    """Start a command on this thread: its clock and seed, and fresh connection counters."""
    set_current(context)
    connection.set_last_insert_rowid(0)
    context.total_changes_start = connection.total_changes()


def end_command() -> None:
    set_current(None)
