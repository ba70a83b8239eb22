"""One replicated database on one replica: its write connection, its applied index, and
transactions run ahead of their commit.

Rules:
- Only the state machine writes, through `WriteDatabase`, one batch of committed
  commands per SQLite transaction (`begin_batch` ... `end_batch`): many clients'
  commands share one commit. The batch also stores the index of its last entry in the
  table `_nodehost_applied`, in the same transaction, so the file always says which
  entries it holds (the on-disk state machine's applied index, Raft thesis 5.2).
- A command takes effect whole or not at all: a command of several statements or
  parameter sets runs inside a savepoint that a failure rolls back; a single statement is
  atomic by itself. A statement that rolls back the whole SQLite transaction (ON CONFLICT
  ROLLBACK, RAISE(ROLLBACK)) would take the batch's earlier commands with it: they are
  applied again, with the same inputs, so the outcome is as if it had failed alone.
- An error every replica meets alike (a constraint, bad SQL) is the command's answer; an
  error of this machine (disk full, I/O, corruption) raises, so the replica stops instead
  of answering differently from the others.
- `speculate` runs an open transaction's statements ahead of its commit, on this replica,
  inside a savepoint it always rolls back; the last run is kept open while nothing else
  uses the connection, so a transaction's next statement costs one statement.
- Settings are fixed, identical on every replica: 4 KiB pages, WAL journal, foreign keys
  enforced, synchronous=NORMAL (the Raft log is the durable copy; `sync` makes the
  files durable before the log behind them is compacted).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import apsw

from nodehost.sqlite import determinism, policy
from nodehost.sqlite.command import (
    Command,
    CommandResult,
    Observed,
    Outcome,
    Statement,
    StatementResult,
    decode_result,
    encode_result,
)
from nodehost.sqlite.policy import META_TABLE, SESSIONS_TABLE, Authorizer
from nodehost.sqlite.statements import leading_keyword

ENTRY_SAVEPOINT = "nodehost_entry"
SPECULATION_SAVEPOINT = "nodehost_speculation"
MAX_NAME_BYTES = 100
MAX_SESSIONS = 10_000
EVICT_EVERY = 16  # about one new session in this many trims the table
_INSERTS = frozenset({"INSERT", "REPLACE"})
_DML = frozenset({"INSERT", "UPDATE", "DELETE", "REPLACE"})


class LocalFailure(Exception):
    """This replica could not apply a command for a reason of its own (disk, memory)."""


def check_name(name: object) -> str:
    """A database name: 1 to 100 bytes of UTF-8 without NUL; raises ValueError."""
    if not isinstance(name, str):
        raise ValueError(f"a database name is a str, not {type(name).__name__}")
    encoded = name.encode("utf-8", "surrogatepass")
    if not 0 < len(encoded) <= MAX_NAME_BYTES or "\x00" in name:
        raise ValueError(f"bad database name {name!r}: 1 to {MAX_NAME_BYTES} bytes, no NUL")
    return name


def file_name(name: str) -> str:
    return "db-" + name.encode("utf-8", "surrogatepass").hex() + ".sqlite"


def name_of_file(file: str) -> str | None:
    """The database a file holds, or None for other files (WAL, temporary, foreign)."""
    if not (file.startswith("db-") and file.endswith(".sqlite")):
        return None
    try:
        return bytes.fromhex(file[3:-7]).decode("utf-8", "surrogatepass")
    except ValueError:
        return None


def describe_unstepped(
    connection: apsw.Connection, sql: str, bindings: object
) -> list[tuple[str, str]]:
    """(name, declared type) of each column of `sql`, found by preparing it without running
    it: apsw describes a statement only while it has rows to give, and a query that
    yielded none must still name its columns (PEP 249's description; dqlite's ROWS)."""
    found: list[tuple[str, str]] = []

    def trace(cursor: apsw.Cursor, text: str, values: object) -> bool:
        found.extend((column[0], column[1] or "") for column in cursor.get_description())
        return False  # abort before the first step: nothing runs

    cursor = connection.cursor()
    cursor.exec_trace = trace
    try:
        cursor.execute(sql, bindings)  # type: ignore[arg-type]
    except apsw.ExecTraceAbort:
        pass
    return found


def outcome_digest(observed: int, result: StatementResult, keyword: str) -> bytes:
    """What the client saw of a statement's outcome, as 16 bytes (see Statement.expect)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(bytes((observed,)))
    if observed & Observed.ERROR:
        digest.update(result.error_code.to_bytes(8, "big", signed=True))
    if result.failed:
        return digest.digest()
    if observed & Observed.ROWCOUNT:
        digest.update(result.rowcount.to_bytes(8, "big", signed=True))
    if observed & Observed.LASTROWID and keyword in _INSERTS:
        digest.update(result.lastrowid.to_bytes(8, "big", signed=True))
    if observed & Observed.ROWS:
        encoded = encode_result(
            CommandResult(
                Outcome.COMMITTED, [StatementResult(columns=result.columns, rows=result.rows)]
            )
        )
        digest.update(encoded)
    return digest.digest()


class WriteDatabase:
    """The state machine's connection to one database file."""

    def __init__(self, directory: Path, name: str) -> None:
        self.name = name
        self.path = directory / file_name(name)
        self.authorizer = Authorizer()
        self.complete_through = 0  # the last entry index this file holds the effects of
        self._keywords: dict[str, str] = {}
        self._connection: apsw.Connection | None = None
        self._batch: list[tuple[Command, int, Outcome]] = []  # applied in the open batch
        self._in_batch = False
        self._batch_last = 0
        self._sessions_ready = False  # the session table is known to exist
        self._speculation_owner: object | None = None
        self._speculation_count = 0
        self._speculation_context: determinism.CommandContext | None = None

    # ------------------------------------------------------------------ files

    @property
    def connection(self) -> apsw.Connection:
        if self._connection is None:
            self._connection = self._open()
        return self._connection

    def exists(self) -> bool:
        return self.path.exists()

    def _open(self) -> apsw.Connection:
        creating = not self.path.exists()
        connection = apsw.Connection(
            str(self.path),
            flags=apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE,
            vfs=determinism.vfs_name(),
        )
        try:
            connection.set_busy_timeout(10_000)
            connection.execute("PRAGMA foreign_keys=ON")
            if creating:
                connection.execute("PRAGMA page_size=4096")
                connection.execute("PRAGMA auto_vacuum=NONE")
            mode = connection.execute("PRAGMA journal_mode=WAL").fetchall()
            if mode != [("wal",)]:
                raise LocalFailure(f"{self.path}: cannot use the WAL journal ({mode})")
            connection.execute("PRAGMA wal_autocheckpoint=1000")
            if creating:
                connection.execute("PRAGMA synchronous=FULL")  # the file itself is durable
                connection.execute(
                    f"CREATE TABLE IF NOT EXISTS {META_TABLE} "
                    "(id INTEGER PRIMARY KEY CHECK (id = 1), raft_index INTEGER NOT NULL)"
                )
                connection.execute(
                    f"INSERT OR IGNORE INTO {META_TABLE}(id, raft_index) VALUES (1, 0)"
                )
                _fsync_directory(self.path.parent)
            connection.execute("PRAGMA synchronous=NORMAL")
            row = connection.execute(f"SELECT raft_index FROM {META_TABLE} WHERE id = 1").fetchall()
            if not row:
                raise LocalFailure(f"{self.path}: no {META_TABLE} row: not a nodehost database")
            self.complete_through = int(row[0][0])  # type: ignore[arg-type]
            determinism.install(connection)
            connection.authorizer = self.authorizer
        except BaseException:
            connection.close()
            raise
        return connection

    def close(self) -> None:
        self._sessions_ready = False  # an uncommitted creation is rolled back by closing
        if self._connection is not None:
            self.drop_speculation()
            self._connection.close()
            self._connection = None

    def sync(self) -> None:
        """Make every committed batch durable (the WAL is fsynced only at checkpoints)."""
        if self._connection is None:
            return
        self.drop_speculation()
        wal = Path(str(self.path) + "-wal")
        for path in (wal, self.path):
            if path.exists():
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)

    # ------------------------------------------------------------------ apply

    def begin_batch(self) -> None:
        self.drop_speculation()
        self._internal("BEGIN")
        self._in_batch = True
        self._batch.clear()
        self._batch_last = self.complete_through

    def end_batch(self) -> None:
        """Commit the batch; the file records the last entry applied to it (not the
        batch's last: batches differ between replicas, files must not)."""
        if not self._in_batch:
            return
        index = self._batch_last
        self._internal(f"UPDATE {META_TABLE} SET raft_index = ? WHERE id = 1", (index,))
        self._internal("COMMIT")
        self._in_batch = False
        self._batch.clear()
        self.complete_through = index

    def note_applied(self, index: int) -> None:
        """Entry `index` was applied to this database in the open batch."""
        self._batch_last = index

    def apply(self, command: Command, index: int) -> CommandResult:
        """Apply one committed command inside the open batch.

        A command of a client session runs once: a retry with the stored sequence gets
        the stored outcome, an older sequence is refused as stale (see the wire README).
        """
        if command.client_id:
            result = self._apply_in_session(command, index)
        else:
            result = self._apply_once(command, index)
        if self._in_batch and self.connection.in_transaction:
            self._batch.append((command, index, result.outcome))
        return result

    def _apply_in_session(self, command: Command, index: int) -> CommandResult:
        client = command.client_id & 0x7FFF_FFFF_FFFF_FFFF  # SQLite integers are signed
        self._ensure_sessions()
        self.authorizer.internal = True
        try:
            row = self.connection.execute(
                f"SELECT sequence, outcome FROM {SESSIONS_TABLE} WHERE client = ?", (client,)
            ).fetchall()
        finally:
            self.authorizer.internal = False
        if row:
            stored_sequence, stored = int(row[0][0]), bytes(row[0][1])  # type: ignore[arg-type]
            if command.sequence == stored_sequence:
                return decode_result(stored)
            if command.sequence < stored_sequence:
                return CommandResult(Outcome.FAILED, message="stale request", error_code=1)
        if not command.statements:
            result = CommandResult(
                Outcome.FAILED, message="cannot commit - no transaction is active", error_code=1
            )
        else:
            result = self._apply_once(command, index)
        self._ensure_sessions()  # a statement may have rolled the transaction back
        self._internal(
            f"INSERT OR REPLACE INTO {SESSIONS_TABLE} (client, sequence, outcome, used) "
            "VALUES (?, ?, ?, ?)",
            (client, command.sequence, encode_result(result), index),
        )
        if not row and client % EVICT_EVERY == 0:
            # Keep the MAX_SESSIONS sessions applied last. Decided by the command alone
            # (about every EVICT_EVERY-th new session), so every replica evicts the same
            # ones at the same entry.
            self._internal(
                f"DELETE FROM {SESSIONS_TABLE} WHERE used < (SELECT used FROM "
                f"{SESSIONS_TABLE} ORDER BY used DESC LIMIT 1 OFFSET ?)",
                (MAX_SESSIONS,),
            )
        return result

    def _ensure_sessions(self) -> None:
        if self._sessions_ready:
            return
        self._internal(
            f"CREATE TABLE IF NOT EXISTS {SESSIONS_TABLE} (client INTEGER PRIMARY KEY, "
            "sequence INTEGER NOT NULL, outcome BLOB NOT NULL, used INTEGER NOT NULL)"
        )
        self._internal(
            f"CREATE INDEX IF NOT EXISTS {SESSIONS_TABLE}_used ON {SESSIONS_TABLE} (used)"
        )
        self._sessions_ready = True

    def _apply_once(self, command: Command, index: int) -> CommandResult:
        return self._execute(command)

    def _execute(self, command: Command) -> CommandResult:
        connection = self.connection
        statements = command.statements
        guarded = len(statements) > 1 or any(len(s.parameters) > 1 for s in statements)
        context = determinism.CommandContext(command.timestamp_ms, command.seed)
        determinism.begin_command(connection, context)
        try:
            if guarded:
                self._internal(f"SAVEPOINT {ENTRY_SAVEPOINT}")
            results: list[StatementResult] = []
            for position, statement in enumerate(statements):
                result = self._run(statement)
                results.append(result)
                if not connection.in_transaction:
                    # The statement rolled back the whole transaction: the batch's earlier
                    # commands are gone with it; apply them again, then report the failure.
                    self._redo_batch()
                    return CommandResult(
                        Outcome.FAILED,
                        results,
                        position,
                        result.error_message or "the statement rolled back its transaction",
                        result.error_code,
                    )
                if statement.observed and statement.expect != outcome_digest(
                    statement.observed, result, self._keyword(statement.sql)
                ):
                    self._undo(guarded)
                    return CommandResult(
                        Outcome.CONFLICT,
                        results,
                        position,
                        "the transaction read data that changed before it committed; retry it",
                        apsw.SQLITE_BUSY_SNAPSHOT,
                    )
                if result.failed and not (statement.observed & Observed.ERROR):
                    self._undo(guarded)
                    return CommandResult(
                        Outcome.FAILED, results, position, result.error_message, result.error_code
                    )
            if guarded:
                self._internal(f"RELEASE {ENTRY_SAVEPOINT}")
            return CommandResult(Outcome.COMMITTED, results)
        finally:
            determinism.end_command()

    def _undo(self, guarded: bool) -> None:
        if guarded:
            self._internal(f"ROLLBACK TO {ENTRY_SAVEPOINT}")
            self._internal(f"RELEASE {ENTRY_SAVEPOINT}")

    def _redo_batch(self) -> None:
        self._internal("BEGIN")
        self._sessions_ready = False  # its creation may have been rolled back
        done, self._batch = self._batch, []
        for command, index, outcome in done:
            again = self.apply(command, index)
            if again.outcome is not outcome:
                raise LocalFailure(
                    f"database {self.name!r}: a command applied again answered differently"
                )

    def _keyword(self, sql: str) -> str:
        keyword = self._keywords.get(sql)
        if keyword is None:
            keyword = leading_keyword(sql)
            if len(self._keywords) > 4096:
                self._keywords.clear()
            self._keywords[sql] = keyword
        return keyword

    def _run(self, statement: Statement) -> StatementResult:
        connection = self.connection
        cursor = connection.cursor()
        result = StatementResult()
        dml = self._keyword(statement.sql) in _DML
        rowcount = 0
        self.authorizer.reason = ""
        try:
            for parameters in statement.parameters:
                bindings: object = (
                    dict(parameters)
                    if parameters and isinstance(parameters[0], tuple)
                    else parameters
                )
                cursor.execute(statement.sql, bindings)  # type: ignore[arg-type]
                first = next(cursor, None)
                if first is not None:
                    if not result.columns:
                        description = cursor.get_description()
                        result.columns = [column[0] for column in description]
                        result.declared_types = [column[1] or "" for column in description]
                    result.rows.append(first)
                    result.rows.extend(cursor)
                elif not result.columns and (not dml or "RETURNING" in statement.sql.upper()):
                    described = describe_unstepped(connection, statement.sql, bindings)
                    result.columns = [name for name, _ in described]
                    result.declared_types = [declared for _, declared in described]
                if dml:
                    rowcount += connection.changes()
                    context = determinism.current()
                    if context is not None:
                        context.statements_changed = True
            result.rowcount = rowcount if dml else -1
            result.lastrowid = connection.last_insert_rowid()
        except apsw.Error as exc:
            if policy.is_local_failure(exc):
                raise LocalFailure(f"database {self.name!r}: {exc}") from exc
            result.rows = []
            result.error_code = policy.result_code(exc)
            result.error_message = policy.message_of(exc, self.authorizer)
        return result

    def _internal(self, sql: str, bindings: tuple[object, ...] | None = None) -> None:
        self.authorizer.internal = True
        try:
            self.connection.execute(sql, bindings)
        except apsw.Error as exc:
            raise LocalFailure(f"database {self.name!r}: {sql}: {exc}") from exc
        finally:
            self.authorizer.internal = False

    # ------------------------------------------------------------------ speculation

    def speculate(self, owner: object, command: Command) -> tuple[list[StatementResult], bool]:
        """Run an open transaction's statements on this replica's current state and roll
        them back; returns their results and whether a statement ended the transaction.

        Only the last statement runs when the previous call was for the same owner with
        one statement fewer and nothing used the connection since.
        """
        connection = self.connection
        statements = command.statements
        incremental = (
            self._speculation_owner is owner
            and self._speculation_count == len(statements) - 1
            and self._speculation_context is not None
            and connection.in_transaction
        )
        if incremental:
            assert self._speculation_context is not None
            context = self._speculation_context
            determinism.set_current(context)
            todo = statements[-1:]
        else:
            self.drop_speculation()
            context = determinism.CommandContext(command.timestamp_ms, command.seed)
            self._internal(f"SAVEPOINT {SPECULATION_SAVEPOINT}")
            determinism.begin_command(connection, context)
            todo = statements
        results: list[StatementResult] = []
        try:
            for statement in todo:
                try:
                    result = self._run(statement)
                except LocalFailure:
                    self.drop_speculation()
                    raise
                results.append(result)
                if not connection.in_transaction:
                    self._forget_speculation()
                    return results, True
        finally:
            determinism.end_command()
        self._speculation_owner = owner
        self._speculation_count = len(statements)
        self._speculation_context = context
        return results, False

    def drop_speculation(self) -> None:
        """Roll back what a transaction ran ahead (before anything else uses the connection)."""
        if self._speculation_owner is None and self._speculation_count == 0:
            return
        connection = self._connection
        self._forget_speculation()
        if connection is not None and connection.in_transaction:
            self._internal(f"ROLLBACK TO {SPECULATION_SAVEPOINT}")
            self._internal(f"RELEASE {SPECULATION_SAVEPOINT}")

    def _forget_speculation(self) -> None:
        self._speculation_owner = None
        self._speculation_count = 0
        self._speculation_context = None

    def release_owner(self, owner: object) -> None:
        """The transaction `owner` ended: its run-ahead state is of no further use."""
        if self._speculation_owner is owner:
            self.drop_speculation()

    # ------------------------------------------------------------------ state

    def digest(self) -> bytes:
        """A digest of the file's pages (header counters that differ with when
        checkpoints ran are masked): equal on replicas that applied the same commands."""
        self.drop_speculation()
        image = bytearray(self.connection.serialize("main") or b"")
        if len(image) >= 100:
            image[24:28] = b"\x00" * 4  # file change counter
            image[92:100] = b"\x00" * 8  # version-valid-for, SQLite version
        return hashlib.blake2b(bytes(image), digest_size=16).digest()


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
