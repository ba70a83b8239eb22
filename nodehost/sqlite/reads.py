"""Read connections: many readers beside the state machine's one writer.

Rules:
- Each thread has its own connection per database (SQLite connections are not shared
  between threads here); WAL lets them read while the writer commits.
- Read connections are `query_only`, use the real clock and the same authorizer policy
  as writes; they never hold a transaction between calls.
- A database that does not exist yet reads as an empty one.
- A snapshot recovery replaces the files: `invalidate` bumps a generation and every
  thread reopens its connections on its next read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import apsw

from nodehost.sqlite import policy
from nodehost.sqlite.command import Statement, StatementResult
from nodehost.sqlite.database import describe_unstepped, file_name
from nodehost.sqlite.policy import Authorizer
from nodehost.sqlite.statements import Classifier, StatementInfo, leading_keyword

_DML = frozenset({"INSERT", "UPDATE", "DELETE", "REPLACE"})


class ReadConnection:
    __slots__ = ("authorizer", "connection")

    def __init__(self, path: Path | None) -> None:
        self.authorizer = Authorizer()
        if path is None:
            self.connection = apsw.Connection(":memory:")
        else:
            self.connection = apsw.Connection(
                str(path), flags=apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_NOMUTEX
            )
        self.connection.set_busy_timeout(10_000)
        self.connection.execute("PRAGMA foreign_keys=ON")
        self.connection.execute("PRAGMA query_only=ON")
        self.connection.authorizer = self.authorizer


class ReadPool:
    def __init__(self, directory: Callable[[], Path]) -> None:
        self._directory = directory
        self._generation = 0
        self._local = threading.local()
        self.classifier = Classifier()

    def invalidate(self) -> None:
        self._generation += 1

    def get(self, name: str) -> ReadConnection:
        local = self._local
        connections: dict[str, ReadConnection] | None = getattr(local, "connections", None)
        if connections is None or local.generation != self._generation:
            if connections is not None:
                for old in connections.values():
                    old.connection.close()
            connections = {}
            local.connections = connections
            local.generation = self._generation
        reader = connections.get(name)
        path = self._directory() / file_name(name)
        if reader is None or (reader.connection.filename == "" and path.exists()):
            if reader is not None:
                reader.connection.close()
            reader = ReadConnection(path if path.exists() else None)
            connections[name] = reader
        return reader

    def classify(self, name: str, sql: str) -> StatementInfo:
        reader = self.get(name)
        reader.authorizer.reason = ""
        try:
            return self.classifier.classify(reader.connection, reader.authorizer, sql)
        except apsw.AuthError as exc:
            raise read_error(exc, reader.authorizer.reason) from None

    def run(self, name: str, statement: Statement) -> StatementResult:
        """Run a read-only statement; apsw errors propagate (the caller maps them)."""
        reader = self.get(name)
        reader.authorizer.reason = ""
        connection = reader.connection
        cursor = connection.cursor()
        result = StatementResult()
        dml = leading_keyword(statement.sql) in _DML
        for parameters in statement.parameters:
            bindings: object = (
                dict(parameters) if parameters and isinstance(parameters[0], tuple) else parameters
            )
            cursor.execute(statement.sql, bindings)  # type: ignore[arg-type]
            try:
                description = cursor.get_description()
            except apsw.ExecutionCompleteError:
                description = ()
            if description:
                if not result.columns:
                    result.columns = [column[0] for column in description]
                    result.declared_types = [column[1] or "" for column in description]
                result.rows.extend(cursor)
            elif not result.columns:  # no rows: the columns are still named
                described = describe_unstepped(connection, statement.sql, bindings)
                result.columns = [name for name, _ in described]
                result.declared_types = [declared for _, declared in described]
        result.rowcount = 0 if dml else -1
        return result

    def reason(self, name: str) -> str:
        """Why the policy refused this thread's last statement on `name`."""
        return self.get(name).authorizer.reason


def read_error(exc: apsw.Error, reason: str) -> Exception:
    message = reason if isinstance(exc, apsw.AuthError) and reason else policy.message_of(exc)
    return policy.error_for(policy.result_code(exc), message)
