"""What SQL may do on a replicated database, and how SQLite's errors reach the caller.

Rules:
- Refused, on every connection (an SQLite authorizer, so triggers and views are covered):
  ATTACH/DETACH and VACUUM (files outside the replicated state), TEMP tables, views,
  indexes and triggers (they would live on one member's connection only), writes to
  `_nodehost_applied` (the replica's own applied index), `load_extension`, and PRAGMAs
  that change a connection's settings. Reading PRAGMAs and `user_version` /
  `application_id` (stored in the database, so replicated) are allowed.
- A refusal names the reason (`Authorizer.reason`), raised as NotSupportedError.
- Errors are split by whether every replica would meet them: a constraint, a syntax
  error or a missing table is the statement's answer (the same on all replicas); a full
  disk, an I/O error or corruption is this replica's problem (`is_local_failure`), and
  the state machine must stop rather than answer it (others may have succeeded).
"""

from __future__ import annotations

import apsw

from nodehost.sqlite import errors

META_TABLE = "_nodehost_applied"
SESSIONS_TABLE = "_nodehost_sessions"
PROTECTED_TABLES = frozenset({META_TABLE.lower(), SESSIONS_TABLE.lower()})

# Pragmas that may be read (no argument, or a table name) on any connection.
_READ_PRAGMAS = frozenset(
    {
        "application_id",
        "auto_vacuum",
        "cache_size",
        "collation_list",
        "compile_options",
        "data_version",
        "database_list",
        "encoding",
        "foreign_key_check",
        "foreign_key_list",
        "foreign_keys",
        "freelist_count",
        "function_list",
        "index_info",
        "index_list",
        "index_xinfo",
        "integrity_check",
        "journal_mode",
        "module_list",
        "page_count",
        "page_size",
        "pragma_list",
        "quick_check",
        "schema_version",
        "synchronous",
        "table_info",
        "table_list",
        "table_xinfo",
        "user_version",
    }
)
# Pragmas whose argument may be set: kept in the database file, so replicated like data.
_WRITE_PRAGMAS = frozenset({"user_version", "application_id"})
# Pragmas whose argument is a table or index name, not a new setting.
_NAME_ARGUMENT_PRAGMAS = frozenset(
    {
        "foreign_key_check",
        "foreign_key_list",
        "index_info",
        "index_list",
        "index_xinfo",
        "integrity_check",
        "quick_check",
        "table_info",
        "table_list",
        "table_xinfo",
    }
)
_TEMP_ACTIONS = frozenset(
    {
        apsw.SQLITE_CREATE_TEMP_TABLE,
        apsw.SQLITE_CREATE_TEMP_INDEX,
        apsw.SQLITE_CREATE_TEMP_TRIGGER,
        apsw.SQLITE_CREATE_TEMP_VIEW,
    }
)
_META_WRITES = frozenset(
    {
        apsw.SQLITE_INSERT,
        apsw.SQLITE_UPDATE,
        apsw.SQLITE_DELETE,
        apsw.SQLITE_DROP_TABLE,
        apsw.SQLITE_ALTER_TABLE,
        apsw.SQLITE_CREATE_INDEX,
        apsw.SQLITE_CREATE_TRIGGER,
    }
)


class Authorizer:
    """An SQLite authorizer for one connection; `internal` lets nodehost's own statements
    write the meta table. `reason` explains the last refusal."""

    def __init__(self) -> None:
        self.internal = False
        self.reason = ""

    def __call__(
        self,
        action: int,
        first: str | None,
        second: str | None,
        database: str | None,
        trigger_or_view: str | None,
    ) -> int:
        reason = self._refusal(action, first, second)
        if reason is None:
            return apsw.SQLITE_OK
        self.reason = reason
        return apsw.SQLITE_DENY

    def _refusal(self, action: int, first: str | None, second: str | None) -> str | None:
        if action == apsw.SQLITE_ATTACH:
            if not first:
                return "VACUUM is not supported on a replicated database"
            return "ATTACH is not supported on a replicated database"
        if action == apsw.SQLITE_DETACH:
            return "DETACH is not supported on a replicated database"
        if action in _TEMP_ACTIONS:
            return (
                "temporary tables, views, indexes and triggers are not supported "
                "(they would exist on one member only)"
            )
        if action == apsw.SQLITE_PRAGMA:
            return _pragma_refusal((first or "").lower(), second)
        if action == apsw.SQLITE_FUNCTION and (second or "").lower() == "load_extension":
            return "load_extension() is not supported"
        if action in _META_WRITES and not self.internal:
            table = (second if action == apsw.SQLITE_ALTER_TABLE else first) or ""
            if table.lower() in PROTECTED_TABLES:
                return f"the table {table} belongs to nodehost and cannot be changed"
        return None


def _pragma_refusal(name: str, argument: str | None) -> str | None:
    if argument is None:
        if name in _READ_PRAGMAS:
            return None
        return f"PRAGMA {name} is not supported on a replicated database"
    if name in _WRITE_PRAGMAS or name in _NAME_ARGUMENT_PRAGMAS:
        return None
    return (
        f"PRAGMA {name} cannot be set: the connection settings of a replicated "
        "database are fixed (foreign keys are always enforced)"
    )


# Primary result codes that depend on this member's machine, not on the SQL.
_LOCAL_FAILURES = frozenset(
    {
        apsw.SQLITE_IOERR,
        apsw.SQLITE_FULL,
        apsw.SQLITE_NOMEM,
        apsw.SQLITE_CORRUPT,
        apsw.SQLITE_CANTOPEN,
        apsw.SQLITE_NOTADB,
        apsw.SQLITE_PERM,
        apsw.SQLITE_BUSY,
        apsw.SQLITE_LOCKED,
        apsw.SQLITE_PROTOCOL,
        apsw.SQLITE_READONLY,
        apsw.SQLITE_INTERNAL,
        apsw.SQLITE_INTERRUPT,
    }
)


def result_code(exc: BaseException) -> int:
    """SQLite's extended result code of an apsw error (SQLITE_ERROR for other errors)."""
    code = getattr(exc, "extendedresult", None)
    if isinstance(code, int) and code:
        return code
    code = getattr(exc, "result", None)
    if isinstance(code, int) and code:
        return code
    return apsw.SQLITE_ERROR


def is_local_failure(exc: BaseException) -> bool:
    return (result_code(exc) & 0xFF) in _LOCAL_FAILURES


def message_of(exc: BaseException, authorizer: Authorizer | None = None) -> str:
    """SQLite's message, without apsw's class-name prefix; a refusal's reason."""
    if isinstance(exc, apsw.AuthError) and authorizer is not None and authorizer.reason:
        return authorizer.reason
    text = str(exc)
    prefix, sep, rest = text.partition(": ")
    if sep and prefix.endswith("Error") and " " not in prefix:
        return rest
    return text


_BY_PRIMARY = {
    apsw.SQLITE_CONSTRAINT: errors.IntegrityError,
    apsw.SQLITE_TOOBIG: errors.DataError,
    apsw.SQLITE_MISMATCH: errors.IntegrityError,
    apsw.SQLITE_RANGE: errors.ProgrammingError,
    apsw.SQLITE_AUTH: errors.NotSupportedError,
    apsw.SQLITE_BUSY: errors.OperationalError,
    apsw.SQLITE_LOCKED: errors.OperationalError,
    apsw.SQLITE_FULL: errors.OperationalError,
    apsw.SQLITE_IOERR: errors.OperationalError,
    apsw.SQLITE_CANTOPEN: errors.OperationalError,
    apsw.SQLITE_READONLY: errors.OperationalError,
    apsw.SQLITE_INTERRUPT: errors.OperationalError,
    apsw.SQLITE_NOMEM: errors.OperationalError,
    apsw.SQLITE_CORRUPT: errors.DatabaseError,
    apsw.SQLITE_NOTADB: errors.DatabaseError,
    apsw.SQLITE_INTERNAL: errors.InternalError,
    apsw.SQLITE_MISUSE: errors.InterfaceError,
}
# SQLITE_ERROR covers many things; PEP 249 names bad SQL and a missing or duplicate
# table as ProgrammingError, the rest stays OperationalError.
_PROGRAMMING_HINTS = (
    "syntax error",
    "incomplete input",
    "unrecognized token",
    "no such table",
    "no such column",
    "no such function",
    "no such index",
    "already exists",
    "wrong number of arguments",
    "has no column named",
)


def error_for(code: int, message: str) -> errors.Error:
    """The PEP 249 exception for an SQLite result code and message (as sqlite3 chooses)."""
    cls = _BY_PRIMARY.get(code & 0xFF)
    if cls is None:
        if any(hint in message for hint in _PROGRAMMING_HINTS):
            cls = errors.ProgrammingError
        else:
            cls = errors.OperationalError
    return cls(message, code)
