"""The PEP 249 connection an App's `open(name)` returns.

Rules (as Python's sqlite3 module, so code written for it runs unchanged):
- paramstyle qmark (`?`), and named (`:name`, `@name`, `$name`) with a dict.
- `isolation_level` "" (the default), "DEFERRED", "IMMEDIATE" or "EXCLUSIVE": a
  transaction begins implicitly before INSERT, UPDATE, DELETE or REPLACE and lasts until
  `commit()` or `rollback()`; `with conn:` commits on success and rolls back on an
  exception. `None`: autocommit, each statement is its own transaction unless an explicit
  BEGIN (or SAVEPOINT) opens one.
- A transaction is replicated at commit as one command (see session.py): reads inside it
  see its own writes; a conflict with another client's write raises OperationalError at
  `commit()` and nothing of the transaction is applied.
- `consistency` ("strong", "weak", "none") applies to reads outside a transaction; one
  query can choose its own with `cursor.execute(sql, params, consistency="none")`.
- A closed connection or cursor raises ProgrammingError, as sqlite3 does.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any

from nodehost.sqlite import errors
from nodehost.sqlite.command import Observed, Parameters, Value
from nodehost.sqlite.session import Backend, Consistency, Execution, Session
from nodehost.sqlite.statements import leading_keyword, split

apilevel = "2.0"
threadsafety = 1  # threads may share the module, not connections
paramstyle = "qmark"

_IMPLICIT_BEGIN = frozenset({"INSERT", "UPDATE", "DELETE", "REPLACE"})
_ISOLATION_LEVELS = ("", "DEFERRED", "IMMEDIATE", "EXCLUSIVE")

Description = tuple[tuple[str, None, None, None, None, None, None], ...]


class Connection:
    """A PEP 249 connection to one replicated database."""

    Error = errors.Error
    Warning = errors.Warning
    InterfaceError = errors.InterfaceError
    DatabaseError = errors.DatabaseError
    DataError = errors.DataError
    OperationalError = errors.OperationalError
    IntegrityError = errors.IntegrityError
    InternalError = errors.InternalError
    ProgrammingError = errors.ProgrammingError
    NotSupportedError = errors.NotSupportedError

    def __init__(
        self,
        backend: Backend,
        database: str,
        *,
        consistency: str | Consistency = Consistency.STRONG,
        isolation_level: str | None = "",
        timeout: float = 10.0,
    ) -> None:
        self._session = Session(
            backend, database, consistency=Consistency.parse(consistency), timeout=timeout
        )
        self._isolation_level: str | None = ""
        self.isolation_level = isolation_level
        self._closed = False
        self.database = database

    # ------------------------------------------------------------------ settings

    @property
    def isolation_level(self) -> str | None:
        return self._isolation_level

    @isolation_level.setter
    def isolation_level(self, value: str | None) -> None:
        if value is not None and (
            not isinstance(value, str) or value.upper() not in _ISOLATION_LEVELS
        ):
            raise ValueError(
                "isolation_level must be None, '', 'DEFERRED', 'IMMEDIATE' or 'EXCLUSIVE'"
            )
        if value is None and self._session.in_transaction:
            self.commit()
        self._isolation_level = value

    @property
    def consistency(self) -> str:
        return self._session.consistency.value

    @consistency.setter
    def consistency(self, value: str | Consistency) -> None:
        self._session.consistency = Consistency.parse(value)

    @property
    def timeout(self) -> float:
        return self._session.timeout

    @timeout.setter
    def timeout(self, value: float) -> None:
        if not isinstance(value, int | float) or value <= 0:
            raise ValueError("timeout must be a positive number of seconds")
        self._session.timeout = float(value)

    @property
    def in_transaction(self) -> bool:
        return self._session.in_transaction

    # ------------------------------------------------------------------ PEP 249

    def cursor(self) -> Cursor:
        self._check()
        return Cursor(self)

    def commit(self) -> None:
        self._check()
        self._session.commit()

    def rollback(self) -> None:
        self._check()
        self._session.rollback()

    def close(self) -> None:
        """Close; an open transaction is rolled back (as sqlite3 does)."""
        if self._closed:
            return
        self._session.rollback()
        self._closed = True

    def execute(self, sql: str, parameters: Parameters | dict[str, Value] = ()) -> Cursor:
        return self.cursor().execute(sql, parameters)

    def executemany(
        self, sql: str, seq_of_parameters: Iterable[Parameters | dict[str, Value]]
    ) -> Cursor:
        return self.cursor().executemany(sql, seq_of_parameters)

    def executescript(self, script: str) -> Cursor:
        return self.cursor().executescript(script)

    def __enter__(self) -> Connection:
        self._check()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if kind is None:
            self.commit()
        else:
            self.rollback()

    # ------------------------------------------------------------------ internals

    def _check(self) -> None:
        if self._closed:
            raise errors.ProgrammingError("Cannot operate on a closed database.")

    def _run(
        self,
        sql: str,
        parameter_sets: Sequence[Any],
        consistency: Consistency | None,
    ) -> Execution:
        self._check()
        session = self._session
        if (
            self._isolation_level is not None
            and not session.in_transaction
            and leading_keyword(sql) in _IMPLICIT_BEGIN
        ):
            session.begin(implicit=True)
        return session.execute(sql, parameter_sets, consistency=consistency)


class Cursor:
    """A PEP 249 cursor; rows are tuples."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.arraysize = 1
        self._execution: Execution | None = None
        self._rows: list[tuple[Value, ...]] = []
        self._position = 0
        self._closed = False
        self._lastrowid: int | None = None
        self._rowcount = -1

    # ------------------------------------------------------------------ execute

    def execute(
        self,
        sql: str,
        parameters: Parameters | dict[str, Value] = (),
        *,
        consistency: str | None = None,
    ) -> Cursor:
        self._check()
        level = Consistency.parse(consistency) if consistency is not None else None
        self._reset()
        execution = self.connection._run(sql, [parameters], level)
        self._take(execution)
        return self

    def executemany(
        self, sql: str, seq_of_parameters: Iterable[Parameters | dict[str, Value]]
    ) -> Cursor:
        self._check()
        self._reset()
        parameter_sets = list(seq_of_parameters)
        if not parameter_sets:
            self._rowcount = 0
            return self
        execution = self.connection._run(sql, parameter_sets, None)
        if execution.result.columns and leading_keyword(sql) not in _IMPLICIT_BEGIN:
            raise errors.ProgrammingError("executemany() can only execute DML statements.")
        self._take(execution)
        return self

    def executescript(self, script: str) -> Cursor:
        """Commit any open transaction, then run each statement in autocommit mode
        (statements between an explicit BEGIN and COMMIT form one transaction)."""
        self._check()
        if not isinstance(script, str):
            raise ValueError("script argument must be unicode.")
        self.connection.commit()
        self._reset()
        session = self.connection._session
        for statement in split(script):
            execution = session.execute(statement, [()], single=True)
            self._take(execution)
        return self

    def _take(self, execution: Execution) -> None:
        self._execution = execution
        result = execution.result
        self._rows = result.rows
        self._position = 0

    def _reset(self) -> None:
        self._execution = None
        self._rows = []
        self._position = 0
        self._rowcount = -1

    # ------------------------------------------------------------------ results

    @property
    def description(self) -> Description | None:
        execution = self._execution
        if execution is None or not execution.result.columns:
            return None
        execution.observe(Observed.ROWS)
        return tuple(
            (name, None, None, None, None, None, None) for name in execution.result.columns
        )

    @property
    def rowcount(self) -> int:
        execution = self._execution
        if execution is None:
            return self._rowcount
        execution.observe(Observed.ROWCOUNT)
        return execution.result.rowcount

    @property
    def lastrowid(self) -> int | None:
        execution = self._execution
        if execution is None:
            return self._lastrowid
        execution.observe(Observed.LASTROWID)
        self._lastrowid = execution.result.lastrowid
        return self._lastrowid

    def fetchone(self) -> tuple[Value, ...] | None:
        self._check()
        self._observe_rows()
        if self._position >= len(self._rows):
            return None
        row = self._rows[self._position]
        self._position += 1
        return row

    def fetchmany(self, size: int | None = None) -> list[tuple[Value, ...]]:
        self._check()
        self._observe_rows()
        count = self.arraysize if size is None else size
        rows = self._rows[self._position : self._position + max(count, 0)]
        self._position += len(rows)
        return rows

    def fetchall(self) -> list[tuple[Value, ...]]:
        self._check()
        self._observe_rows()
        rows = self._rows[self._position :]
        self._position = len(self._rows)
        return rows

    def __iter__(self) -> Iterator[tuple[Value, ...]]:
        while (row := self.fetchone()) is not None:
            yield row

    def _observe_rows(self) -> None:
        if self._execution is not None:
            self._execution.observe(Observed.ROWS)

    def close(self) -> None:
        self._closed = True
        self._rows = []

    def setinputsizes(self, sizes: object) -> None:
        """Nothing to do (PEP 249 allows a no-op)."""

    def setoutputsize(self, size: object, column: object = None) -> None:
        """Nothing to do (PEP 249 allows a no-op)."""

    def _check(self) -> None:
        if self._closed:
            raise errors.ProgrammingError("Cannot operate on a closed cursor.")
        self.connection._check()

    def __enter__(self) -> Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
