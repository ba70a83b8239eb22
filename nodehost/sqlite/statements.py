"""What a piece of SQL is, before it runs: how many statements, read or write, and
whether it controls a transaction.

Rules:
- SQLite itself decides: statements are split where `sqlite3_complete` says one ends
  (so a trigger body's semicolons do not split it), and a statement is classified by
  preparing it (never running it) on a read connection: `sqlite3_stmt_readonly` and the
  authorizer's transaction and savepoint actions.
- Classification is cached by SQL text; the cache is bounded.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from enum import IntEnum

import apsw

from nodehost.sqlite.policy import Authorizer

_CACHE_SIZE = 2048
_WANTED = re.compile(r"Statement has (\d+) bindings")


class Control(IntEnum):
    """Transaction control, decided by the connection layer, never replicated as is."""

    NONE = 0
    BEGIN = 1
    COMMIT = 2
    ROLLBACK = 3
    SAVEPOINT = 4
    RELEASE = 5
    ROLLBACK_TO = 6


@dataclass(frozen=True, slots=True)
class StatementInfo:
    sql: str
    readonly: bool
    control: Control
    savepoint: str  # the savepoint's name for SAVEPOINT / RELEASE / ROLLBACK TO
    parameter_count: int
    parameter_names: tuple[str | None, ...]
    dml: bool  # INSERT, UPDATE, DELETE or REPLACE: rowcount is meaningful
    has_tail: bool  # more statements follow this one in the text given


def split(sql: str) -> list[str]:
    """The statements of `sql`, each with its terminating semicolon; blank or
    comment-only pieces are dropped. Text after the last complete statement is kept
    as a final (incomplete) statement, so preparing it reports the error."""
    statements: list[str] = []
    start = 0
    position = sql.find(";")
    while position != -1:
        candidate = sql[start : position + 1]
        if apsw.complete(candidate):
            if _has_content(candidate):
                statements.append(candidate.strip())
            start = position + 1
        position = sql.find(";", position + 1)
    rest = sql[start:]
    if _has_content(rest):
        statements.append(rest.strip())
    return statements


def _has_content(sql: str) -> bool:
    """False for whitespace, comments and lone semicolons."""
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c.isspace() or c == ";":
            i += 1
        elif sql.startswith("--", i):
            newline = sql.find("\n", i)
            i = n if newline == -1 else newline + 1
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end == -1 else end + 2
        else:
            return True
    return False


def leading_keyword(sql: str) -> str:
    """The first word of the statement, upper-cased, after blanks and comments."""
    i, n = 0, len(sql)
    while i < n:
        if sql[i].isspace() or sql[i] == "(":
            i += 1
        elif sql.startswith("--", i):
            newline = sql.find("\n", i)
            i = n if newline == -1 else newline + 1
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end == -1 else end + 2
        else:
            break
    j = i
    while j < n and (sql[j].isalnum() or sql[j] == "_"):
        j += 1
    return sql[i:j].upper()


_DML = frozenset({"INSERT", "UPDATE", "DELETE", "REPLACE"})


class _Recorder:
    """Authorizer that records transaction actions while delegating to the policy."""

    def __init__(self, policy: Authorizer) -> None:
        self.policy = policy
        self.control = Control.NONE
        self.savepoint = ""

    def __call__(
        self,
        action: int,
        first: str | None,
        second: str | None,
        database: str | None,
        trigger_or_view: str | None,
    ) -> int:
        if action == apsw.SQLITE_TRANSACTION:
            self.control = {
                "BEGIN": Control.BEGIN,
                "COMMIT": Control.COMMIT,
                "ROLLBACK": Control.ROLLBACK,
            }.get(first or "", Control.NONE)
            return apsw.SQLITE_OK
        if action == apsw.SQLITE_SAVEPOINT:
            self.control = {
                "BEGIN": Control.SAVEPOINT,
                "RELEASE": Control.RELEASE,
                "ROLLBACK": Control.ROLLBACK_TO,
            }.get(first or "", Control.NONE)
            self.savepoint = second or ""
            return apsw.SQLITE_OK
        return self.policy(action, first, second, database, trigger_or_view)


class Classifier:
    """Classifies statements by preparing them on a connection the caller owns."""

    def __init__(self) -> None:
        self._cache: OrderedDict[str, StatementInfo] = OrderedDict()
        self._lock = threading.Lock()

    def classify(self, connection: apsw.Connection, policy: Authorizer, sql: str) -> StatementInfo:
        """Prepare the first statement of `sql`; apsw errors (bad SQL, a refusal, a
        missing table) propagate with the policy's reason recorded."""
        with self._lock:
            info = self._cache.get(sql)
            if info is not None:
                self._cache.move_to_end(sql)
                return info
        info = self._prepare(connection, policy, sql)
        with self._lock:
            self._cache[sql] = info
            if len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return info

    def _prepare(self, connection: apsw.Connection, policy: Authorizer, sql: str) -> StatementInfo:
        recorder = _Recorder(policy)
        seen: list[StatementInfo] = []

        def trace(cursor: apsw.Cursor, text: str, bindings: object) -> bool:
            keyword = leading_keyword(text)
            seen.append(
                StatementInfo(
                    sql=sql,
                    readonly=bool(cursor.is_readonly),
                    control=recorder.control,
                    savepoint=recorder.savepoint,
                    parameter_count=cursor.bindings_count,
                    parameter_names=tuple(cursor.bindings_names),
                    dml=keyword in _DML or (keyword == "WITH" and not cursor.is_readonly),
                    has_tail=_has_content(sql[len(text) :])
                    if sql.startswith(text)
                    else _has_content(sql.replace(text, "", 1)),
                )
            )
            return False

        previous = connection.authorizer
        connection.authorizer = recorder
        cursor = connection.cursor()
        cursor.exec_trace = trace
        try:
            try:
                cursor.execute(sql, None, can_cache=False)
            except apsw.BindingsError as exc:
                # apsw checks bindings before tracing: give as many NULLs as it wants.
                match = _WANTED.search(str(exc))
                if match is None:
                    raise
                cursor.execute(sql, (None,) * int(match.group(1)), can_cache=False)
        except apsw.ExecTraceAbort:
            pass
        finally:
            connection.authorizer = previous
        if not seen:
            # Nothing to prepare (only comments): a statement that does nothing.
            return StatementInfo(sql, True, Control.NONE, "", 0, (), False, False)
        return seen[0]
