"""The PEP 249 exception hierarchy, shared by the embedded connection and the remote client.

Rules:
- Every error a SQL caller sees is one of these, so code written for `sqlite3` catches
  the same classes (`IntegrityError` for a UNIQUE violation, `OperationalError` for no
  quorum or a timeout).
- `code` is SQLite's extended result code when SQLite produced the error (0 otherwise):
  the dqlite wire protocol carries it, and callers can tell SQLITE_BUSY from SQLITE_FULL.
"""

from __future__ import annotations


class Warning(Exception):  # the name PEP 249 requires, shadowing the builtin
    """An important warning, such as a value truncated on insert."""


class Error(Exception):
    """Base of every error a SQL call raises."""

    def __init__(self, message: str = "", code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class InterfaceError(Error):
    """The interface was misused: a closed connection or cursor, a bad parameter type."""


class DatabaseError(Error):
    """An error of the database itself."""


class DataError(DatabaseError):
    """A value could not be processed: out of range, too big."""


class OperationalError(DatabaseError):
    """The cluster could not serve the call now: no quorum, a timeout, a member gone."""


class IntegrityError(DatabaseError):
    """A constraint failed: UNIQUE, NOT NULL, FOREIGN KEY, CHECK."""


class InternalError(DatabaseError):
    """The database is in a state it should never be in."""


class ProgrammingError(DatabaseError):
    """The SQL is wrong: a syntax error, a missing table, a wrong number of parameters."""


class NotSupportedError(DatabaseError):
    """The call is valid SQL or DB-API but this database does not support it."""


__all__ = [
    "DataError",
    "DatabaseError",
    "Error",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "NotSupportedError",
    "OperationalError",
    "ProgrammingError",
    "Warning",
]
