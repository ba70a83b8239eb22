"""The remote SQL client: a PEP 249 connection over dqlite's wire protocol, for a process
that hosts no member (and for dqlite itself: the protocol is the same).

    conn = connect("127.0.0.1:9001,127.0.0.1:9002", database="demo")
    with conn:
        conn.execute("INSERT INTO t(v) VALUES (?)", ("x",))
    conn.execute("SELECT v FROM t").fetchall()

Rules:
- It answers as the embedded connection (`App.open`) and Python's sqlite3 do: qmark and
  named parameters, a transaction begun implicitly before INSERT, UPDATE, DELETE and
  REPLACE unless `isolation_level` is None, `with conn:` commits or rolls back, rows are
  tuples of int, float, str, bytes and None.
- Requests go to the leader, found and followed by wire/channel.py, which also decides
  what may be resent after a failure: reads always; a write outside a transaction or a
  COMMIT whose answer was lost only to a server that deduplicates by session, so it is
  applied once; otherwise the caller gets OperationalError saying that the outcome is
  unknown. A transaction whose connection to the leader is lost is rolled back, and the
  caller is told so (OperationalError) by its next statement or commit.
- The statement kind (query or not, certainly read-only or not) and the parameter
  numbering come from sqlscan.py, as SQLite would decide them.
- One request at a time per connection, as the protocol requires. Rows arrive in
  batches; a cursor reads them as it is fetched from, and another request on the same
  connection first reads the rest of an unfinished result into its cursor, so nothing
  is lost. Closing a cursor with rows left interrupts the query.
- Every wait is bounded by the timeout; every byte from a member goes through the
  bounded codec, so a broken or hostile member costs an error, never a hang.
"""

from __future__ import annotations

import datetime
import secrets
import ssl
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import TracebackType

import apsw

from nodehost.sqlite import errors
from nodehost.sqlite.errors import (
    DatabaseError,
    DataError,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    Warning,
)
from nodehost.sqlite.members import NodeInfo, Role
from nodehost.sqlite.sqlscan import Scan, scan, split
from nodehost.sqlite.wire import channel, codec
from nodehost.sqlite.wire.channel import (
    DEFAULT_TIMEOUT,
    NoLeader,
    client_tls,
    parse_addresses,
)

apilevel = "2.0"
threadsafety = 1  # threads may share the module, not connections
paramstyle = "qmark"
#: The SQLite that nodehost's members run (apsw's, pinned by the lock file). A dqlite
#: server's may differ: ask it with `SELECT sqlite_version()` (the SQLAlchemy dialect does).
sqlite_version = apsw.sqlite_lib_version()
sqlite_version_info = tuple(int(part) for part in sqlite_version.split("."))

# PEP 249's type objects and constructors. Column types are not reported (a
# description's type_code is None, as in sqlite3), so the type objects match nothing.
Date = datetime.date
Time = datetime.time
Timestamp = datetime.datetime
Binary = bytes


def DateFromTicks(ticks: float) -> datetime.date:  # the names are PEP 249's
    return datetime.date.fromtimestamp(ticks)


def TimeFromTicks(ticks: float) -> datetime.time:
    return datetime.datetime.fromtimestamp(ticks).time()


def TimestampFromTicks(ticks: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ticks)


class _TypeObject:
    def __init__(self, *names: str) -> None:
        self.names = frozenset(names)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and other.upper() in self.names

    def __hash__(self) -> int:
        return hash(self.names)


STRING = _TypeObject("TEXT", "VARCHAR", "CHAR", "CLOB")
BINARY = _TypeObject("BLOB")
NUMBER = _TypeObject("INTEGER", "REAL", "FLOAT", "NUMERIC")
DATETIME = _TypeObject("DATETIME", "DATE", "TIMESTAMP")
ROWID = _TypeObject("ROWID")

_ISOLATION_LEVELS = ("", "DEFERRED", "IMMEDIATE", "EXCLUSIVE")
_CONSISTENCY = {
    "strong": codec.Consistency.STRONG,
    "weak": codec.Consistency.WEAK,
    "none": codec.Consistency.NONE,
}

Value = None | int | float | str | bytes
Row = tuple[Value, ...]
Description = tuple[tuple[str, None, None, None, None, None, None], ...]


# -- values -----------------------------------------------------------------------------


def _adapt(value: object, position: int) -> codec.Value:
    """A parameter as sqlite3 would bind it."""
    if value is None or isinstance(value, float | str):
        if isinstance(value, str) and "\x00" in value:
            raise DataError(
                f"parameter {position} contains a NUL character, which the wire protocol "
                "cannot carry in text (bind it as bytes)"
            )
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        if not codec.MIN_I64 <= value <= codec.MAX_I64:
            raise DataError(f"Python int too large to convert to SQLite INTEGER: {value}")
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, datetime.datetime):
        return value.isoformat(" ")  # what sqlite3's default adapter stores
    if isinstance(value, datetime.date):
        return value.isoformat()
    raise InterfaceError(
        f"Error binding parameter {position}: type {type(value).__name__!r} is not supported"
    )


def _bind(info: Scan, parameters: object) -> tuple[codec.Value, ...]:
    if isinstance(parameters, dict):
        values: list[codec.Value] = []
        for position, name in enumerate(info.parameter_names, start=1):
            if name is None:
                raise ProgrammingError(
                    f"Binding {position} has no name, but you supplied a dictionary "
                    "(which has only names)."
                )
            key = name[1:]
            if key not in parameters:
                raise ProgrammingError(f"You did not supply a value for binding parameter {name}.")
            values.append(_adapt(parameters[key], position))
        return tuple(values)
    if isinstance(parameters, str | bytes | bytearray) or not isinstance(parameters, Sequence):
        raise ProgrammingError(
            f"parameters are a sequence or a dict, not {type(parameters).__name__}"
        )
    if len(parameters) != info.parameter_count:
        raise ProgrammingError(
            f"Incorrect number of bindings supplied. The current statement uses "
            f"{info.parameter_count}, and there are {len(parameters)} supplied."
        )
    return tuple(_adapt(value, position) for position, value in enumerate(parameters, start=1))


def _python_row(row: codec.Row) -> Row:
    """A row as sqlite3 returns it: dqlite's date and boolean types become the stored
    text or integer, and ISO8601 "" (dqlite's NULL in a date column) becomes None."""
    for value in row:
        if isinstance(value, bool | codec.Iso8601 | codec.UnixTime):
            break
    else:
        return row  # type: ignore[return-value]
    return tuple(_python_value(value) for value in row)


def _python_value(value: codec.Value) -> Value:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, codec.Iso8601):
        return value.text or None
    if isinstance(value, codec.UnixTime):
        return value.seconds
    return value


# -- the PEP 249 connection ------------------------------------------------------------------


def connect(
    address: str | Sequence[str],
    database: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    consistency: str = "strong",
    isolation_level: str | None = "",
    tls: ssl.SSLContext | None = None,
    max_message_size: int = codec.DEFAULT_MAX_BODY,
) -> Connection:
    """Connect to `database` on the cluster whose members include `address`
    ("host:port,host:port" or a list). The database must exist on the cluster if the
    server does not create it on first use (dqlite does; see the server's rules).

    `timeout` bounds every call, failovers included; `consistency` ("strong", "weak",
    "none") applies to reads outside a transaction; `isolation_level` is sqlite3's;
    `tls` is a client TLS context for a cluster using mutual TLS (see `client_tls`);
    `max_message_size` bounds one message from a member (a larger one is an error).
    """
    return Connection(
        parse_addresses(address),
        database,
        timeout=timeout,
        consistency=consistency,
        isolation_level=isolation_level,
        tls=tls,
        max_message_size=max_message_size,
    )


class Connection:
    """A PEP 249 connection to one database of a cluster, through its leader."""

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
        addresses: list[str],
        database: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        consistency: str = "strong",
        isolation_level: str | None = "",
        tls: ssl.SSLContext | None = None,
        max_message_size: int = codec.DEFAULT_MAX_BODY,
    ) -> None:
        if not isinstance(database, str) or not database or "\x00" in database:
            raise InterfaceError(f"a database name is a non-empty str, not {database!r}")
        self._closed = True  # until connected: close() must work on a half-built object
        self.database = database
        self.timeout = timeout
        self.consistency = consistency
        self._isolation_level: str | None = ""
        self.isolation_level = isolation_level
        self._channel = channel.Channel(
            addresses,
            tls=tls,
            max_body=max_message_size,
            session_id=secrets.randbits(63) + 1,
            database=database,
        )
        self._conversation = channel.Conversation(self._channel, timeout)
        self._in_transaction = False
        self._savepoints: list[str] = []
        self._begun_by_savepoint = False
        self._transaction_lost = ""
        self._streaming: _Rows | None = None
        self._closed = False
        # Reads at consistency none may come from any member: so may the first link.
        self._channel.ensure(time.monotonic() + timeout, follower_ok=consistency == "none")

    # ------------------------------------------------------------------ settings

    @property
    def timeout(self) -> float:
        return self._timeout

    @timeout.setter
    def timeout(self, value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise InterfaceError(f"timeout must be a positive number of seconds, not {value!r}")
        self._timeout = float(value)
        if hasattr(self, "_conversation"):
            self._conversation.timeout = self._timeout

    @property
    def consistency(self) -> str:
        return self._consistency

    @consistency.setter
    def consistency(self, value: str) -> None:
        _parse_consistency(value)
        self._consistency = value

    @property
    def isolation_level(self) -> str | None:
        return self._isolation_level

    @isolation_level.setter
    def isolation_level(self, value: str | None) -> None:
        if value is not None and (
            not isinstance(value, str) or value.upper() not in _ISOLATION_LEVELS
        ):
            raise InterfaceError(
                "isolation_level must be None, '', 'DEFERRED', 'IMMEDIATE' or 'EXCLUSIVE'"
            )
        if value is None and not self._closed and self._in_transaction:
            self.commit()
        self._isolation_level = value

    @property
    def in_transaction(self) -> bool:
        return self._in_transaction

    @property
    def leader_address(self) -> str:
        """The member this connection talks to, when it is the leader."""
        return self._channel.leader_address if self._channel.on_leader else ""

    # ------------------------------------------------------------------ PEP 249

    def cursor(self) -> Cursor:
        self._check()
        return Cursor(self)

    def commit(self) -> None:
        self._check()
        if not self._in_transaction:
            return
        self._transaction_statement("COMMIT", scan("COMMIT"))

    def rollback(self) -> None:
        self._check()
        if not self._in_transaction:
            return
        self._transaction_statement("ROLLBACK", scan("ROLLBACK"))

    def close(self) -> None:
        """Close; an open transaction is rolled back (the leader drops it with the link)."""
        if self._closed:
            return
        self._closed = True
        self._streaming = None
        self._in_transaction = False
        self._channel.drop()

    def execute(
        self, sql: str, parameters: object = (), *, consistency: str | None = None
    ) -> Cursor:
        return self.cursor().execute(sql, parameters, consistency=consistency)

    def executemany(self, sql: str, seq_of_parameters: Iterable[object]) -> Cursor:
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
        elif not self._closed:
            self.rollback()

    # ------------------------------------------------------------------ cluster

    def leader(self) -> NodeInfo | None:
        """The leader as the member this connection talks to knows it."""
        answer = self._admin(codec.LeaderRequest())
        if isinstance(answer, codec.ServerResponse) and answer.address:
            return NodeInfo(answer.node_id, answer.address, Role.VOTER)
        return None

    def cluster(self) -> list[NodeInfo]:
        """Every member with its role, as the leader sees them."""
        answer = self._admin(codec.ClusterRequest(codec.ClusterFormat.V1))
        return channel.members_of(answer)

    def _admin(self, request: codec.Request) -> codec.Response:
        self._check()
        self._finish_streaming()
        resend = channel.Resend.NEVER if self._in_transaction else channel.Resend.ALWAYS
        try:
            answer = self._conversation.request(lambda _tag: request, resend=resend)
        except channel.LinkLost as lost:
            raise self._lose_transaction(str(lost)) from None
        if isinstance(answer, codec.FailureResponse):
            raise channel.error_for(answer)
        return answer

    # ------------------------------------------------------------------ statements

    def _check(self) -> None:
        if self._closed:
            raise ProgrammingError("Cannot operate on a closed database.")

    def _finish_streaming(self) -> None:
        """Read the rest of an unfinished result into its cursor: the link is needed."""
        streaming = self._streaming
        if streaming is not None:
            self._streaming = None
            streaming.drain()

    def _statement(
        self,
        sql: str,
        info: Scan,
        values: tuple[codec.Value, ...],
        consistency: str | None,
        implicit: bool = True,
    ) -> codec.Response:
        """Send one statement, with an implicit BEGIN first when sqlite3 would (never
        for a script's statements: executescript leaves transactions to the script)."""
        if self._transaction_lost:
            raise self._lose_transaction(self._transaction_lost)
        if info.keyword in ("BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE"):
            return self._transaction_statement(sql, info, values)
        if implicit and self._isolation_level is not None and not self._in_transaction and info.dml:
            self._transaction_statement(f"BEGIN {self._isolation_level}".strip(), scan("BEGIN"))
        if self._in_transaction:
            return self._send(sql, info, values, channel.Resend.NEVER)
        if info.read_only:
            level = _parse_consistency(consistency or self._consistency)
            return self._send(sql, info, values, channel.Resend.ALWAYS, level)
        # A write that yields rows (RETURNING) cannot be answered again from a session.
        resend = channel.Resend.UNSENT if info.returns_rows else channel.Resend.SESSION
        return self._send(sql, info, values, resend)

    def _send(
        self,
        sql: str,
        info: Scan,
        values: tuple[codec.Value, ...],
        resend: channel.Resend,
        level: codec.Consistency = codec.Consistency.STRONG,
    ) -> codec.Response:
        self._finish_streaming()
        query = info.returns_rows

        def build(tag: codec.RequestTag) -> codec.Request:
            # The database id is read at each attempt: a new link may have a new one.
            if query:
                return codec.QuerySqlRequest(self._channel.db_id, sql, values, tag)
            return codec.ExecSqlRequest(self._channel.db_id, sql, values, tag)

        try:
            answer = self._conversation.request(
                build,
                resend=resend,
                consistency=level,
                follower_ok=level is codec.Consistency.NONE and info.read_only,
            )
        except channel.LinkLost as lost:
            raise self._lose_transaction(str(lost)) from None
        if isinstance(answer, codec.FailureResponse):
            raise channel.error_for(answer)
        return answer

    def _transaction_statement(
        self, sql: str, info: Scan, values: tuple[codec.Value, ...] = ()
    ) -> codec.Response:
        """BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE: sent to the leader, and tracked
        here so that `in_transaction` and the retry rules know where we are."""
        keyword = info.keyword
        ending = keyword in ("COMMIT", "END") or (keyword == "ROLLBACK" and not info.rollback_to)
        if self._transaction_lost and ending:
            reason = self._transaction_lost
            self._forget_transaction()
            if keyword == "ROLLBACK":
                return codec.EmptyResponse()
            raise OperationalError(f"{reason}; nothing was committed")
        if keyword == "ROLLBACK" and not info.rollback_to and self._channel.link is None:
            self._forget_transaction()  # the leader dropped it with the link
            return codec.EmptyResponse()
        starting = not self._in_transaction and keyword in ("BEGIN", "SAVEPOINT")
        if starting:
            resend = channel.Resend.ALWAYS  # nothing to lose yet
        elif keyword in ("COMMIT", "END"):
            resend = channel.Resend.SESSION
        else:
            resend = channel.Resend.NEVER
        try:
            answer = self._send(sql, info, values, resend)
        except _TransactionLost:
            raise
        except Error as error:
            if ending and _no_transaction(error):
                was = self._in_transaction
                self._forget_transaction()
                if keyword == "ROLLBACK" or not was:
                    if keyword == "ROLLBACK":
                        return codec.EmptyResponse()
                    raise
                raise OperationalError(
                    "the transaction was lost when the connection to the leader failed; "
                    "nothing was committed"
                ) from None
            if keyword in ("COMMIT", "END") and isinstance(error, OperationalError):
                self._forget_transaction()  # the server ends a transaction whose commit fails
            raise
        if starting:
            self._in_transaction = True
            self._begun_by_savepoint = keyword == "SAVEPOINT"
            self._savepoints = [info.savepoint] if keyword == "SAVEPOINT" else []
        elif keyword == "SAVEPOINT":
            self._savepoints.append(info.savepoint)
        elif keyword == "RELEASE":
            if info.savepoint in self._savepoints:
                del self._savepoints[self._savepoints.index(info.savepoint) :]
            if not self._savepoints and self._begun_by_savepoint:
                self._forget_transaction()
        elif ending:
            self._forget_transaction()
        return answer

    def _forget_transaction(self) -> None:
        self._in_transaction = False
        self._savepoints = []
        self._begun_by_savepoint = False
        self._transaction_lost = ""

    def _lose_transaction(self, reason: str) -> errors.OperationalError:
        """The link to the leader died while a transaction was open: it is rolled back."""
        if not self._in_transaction:
            return OperationalError(f"the connection to the leader was lost ({reason})")
        message = (
            f"the connection to the leader was lost ({reason}); the transaction was rolled back"
        )
        self._transaction_lost = message
        return _TransactionLost(message)


class _TransactionLost(OperationalError):
    """The open transaction died with its link (a PEP 249 OperationalError)."""


def _no_transaction(error: Error) -> bool:
    return "no transaction is active" in str(error)


def _parse_consistency(value: object) -> codec.Consistency:
    level = _CONSISTENCY.get(value) if isinstance(value, str) else None
    if level is None:
        raise ProgrammingError(f"unknown consistency {value!r}: use 'strong', 'weak' or 'none'")
    return level


# -- cursors and their rows ----------------------------------------------------------------


class _Rows:
    """A result: the rows received so far, and whether more are on the way."""

    def __init__(self, connection: Connection, first: codec.RowsResponse) -> None:
        self.connection = connection
        self.columns = first.columns
        self.buffer: deque[Row] = deque(_python_row(row) for row in first.rows)
        self.done = first.done
        self.total = len(self.buffer)
        self.failure: Error | None = None
        if not self.done:
            connection._streaming = self

    def fetch_more(self) -> bool:
        """Read the next batch; False when the result is complete."""
        if self.done:
            return False
        if self.failure is not None:
            raise self.failure
        connection = self.connection
        link = connection._channel.link
        try:
            if link is None or link.closed:
                raise channel.Gone("the connection closed", sent=True)
            answer = link.receive(time.monotonic() + connection.timeout)
        except channel.Gone as gone:
            connection._channel.drop()
            self._stop()
            error = (
                connection._lose_transaction(str(gone))
                if connection.in_transaction
                else OperationalError(f"the connection was lost while reading rows ({gone})")
            )
            self.failure = error
            raise error from None
        if isinstance(answer, codec.FailureResponse):
            self._stop()
            self.failure = channel.error_for(answer)
            raise self.failure
        if not isinstance(answer, codec.RowsResponse):
            connection._channel.drop()
            self._stop()
            self.failure = OperationalError(f"rows were answered with {type(answer).__name__}")
            raise self.failure
        rows = [_python_row(row) for row in answer.rows]
        self.buffer.extend(rows)
        self.total += len(rows)
        if answer.done:
            self._stop()
        return True

    def drain(self) -> None:
        while not self.done:
            try:
                self.fetch_more()
            except Error:
                return  # the cursor raises it when fetched from

    def interrupt(self) -> None:
        """Stop the query on the server and discard what it still sends."""
        if self.done:
            return
        self._stop()
        connection = self.connection
        link = connection._channel.link
        if link is None or link.closed:
            return
        deadline = time.monotonic() + connection.timeout
        try:
            link.send(codec.InterruptRequest(connection._channel.db_id), deadline)
            while not isinstance(
                link.receive(deadline), codec.EmptyResponse | codec.FailureResponse
            ):
                pass
        except channel.Gone as gone:
            connection._channel.drop()
            if connection.in_transaction:
                connection._lose_transaction(str(gone))

    def _stop(self) -> None:
        self.done = True
        if self.connection._streaming is self:
            self.connection._streaming = None


class Cursor:
    """A PEP 249 cursor; rows are tuples."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.arraysize = 1
        self._rows: _Rows | None = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._closed = False
        self._counts_rows = False  # a DML statement with RETURNING: rowcount = rows seen

    # ------------------------------------------------------------------ execute

    def execute(
        self, sql: str, parameters: object = (), *, consistency: str | None = None
    ) -> Cursor:
        self._check()
        if not isinstance(sql, str):
            raise ProgrammingError(f"SQL must be a str, not {type(sql).__name__}")
        if "\x00" in sql:
            raise ProgrammingError("the SQL statement contains a null character")
        if consistency is not None:
            _parse_consistency(consistency)
        self._reset()
        info = scan(sql)
        values = _bind(info, parameters)
        answer = self.connection._statement(sql, info, values, consistency)
        self._take(info, answer)
        return self

    def executemany(self, sql: str, seq_of_parameters: Iterable[object]) -> Cursor:
        self._check()
        if not isinstance(sql, str):
            raise ProgrammingError(f"SQL must be a str, not {type(sql).__name__}")
        info = scan(sql)
        if info.returns_rows:
            raise ProgrammingError("executemany() can only execute DML statements.")
        self._reset()
        total = 0
        for parameters in seq_of_parameters:
            answer = self.connection._statement(sql, info, _bind(info, parameters), None)
            if isinstance(answer, codec.ResultResponse):
                total += answer.rows_affected
                if info.keyword in ("INSERT", "REPLACE"):
                    self._lastrowid = answer.last_insert_id
        self._rowcount = total if info.dml else -1
        return self

    def executescript(self, script: str) -> Cursor:
        """Commit any open transaction, then run each statement of the script as it comes
        (statements between an explicit BEGIN and COMMIT form one transaction)."""
        self._check()
        if not isinstance(script, str):
            raise ValueError("script argument must be unicode.")
        connection = self.connection
        connection.commit()
        self._reset()
        for statement in split(script):
            info = scan(statement)
            answer = connection._statement(statement, info, _bind(info, ()), None, implicit=False)
            if isinstance(answer, codec.RowsResponse):
                _Rows(connection, answer).drain()
        return self

    def _take(self, info: Scan, answer: codec.Response) -> None:
        if isinstance(answer, codec.RowsResponse):
            self._rows = _Rows(self.connection, answer)
            self._counts_rows = info.dml
            self._rowcount = -1
            if self._counts_rows and self._rows.done:
                self._rowcount = self._rows.total
        elif isinstance(answer, codec.ResultResponse):
            self._rowcount = answer.rows_affected if info.dml else -1
            if info.keyword in ("INSERT", "REPLACE"):
                self._lastrowid = answer.last_insert_id
        elif not isinstance(answer, codec.EmptyResponse):
            raise InterfaceError(f"a statement was answered with {type(answer).__name__}")

    def _reset(self) -> None:
        rows, self._rows = self._rows, None
        if rows is not None and not rows.done:
            rows.interrupt()
        self._rowcount = -1
        self._counts_rows = False

    # ------------------------------------------------------------------ results

    @property
    def description(self) -> Description | None:
        rows = self._rows
        if rows is None or not rows.columns:
            return None
        return tuple((name, None, None, None, None, None, None) for name in rows.columns)

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._lastrowid

    def fetchone(self) -> Row | None:
        self._check()
        rows = self._rows
        if rows is None:
            return None
        while not rows.buffer:
            if not rows.fetch_more():
                self._count_rows()
                return None
        return rows.buffer.popleft()

    def fetchmany(self, size: int | None = None) -> list[Row]:
        count = self.arraysize if size is None else size
        result: list[Row] = []
        while len(result) < count:
            row = self.fetchone()
            if row is None:
                break
            result.append(row)
        return result

    def fetchall(self) -> list[Row]:
        self._check()
        rows = self._rows
        if rows is None:
            return []
        while rows.fetch_more():
            pass
        result = list(rows.buffer)
        rows.buffer.clear()
        self._count_rows()
        return result

    def __iter__(self) -> Iterator[Row]:
        while (row := self.fetchone()) is not None:
            yield row

    def _count_rows(self) -> None:
        if self._counts_rows and self._rows is not None and self._rows.done:
            self._rowcount = self._rows.total

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        rows, self._rows = self._rows, None
        if rows is not None and not rows.done and not self.connection._closed:
            rows.interrupt()

    def setinputsizes(self, sizes: object) -> None:
        """Nothing to do (PEP 249 allows a no-op)."""

    def setoutputsize(self, size: object, column: object = None) -> None:
        """Nothing to do (PEP 249 allows a no-op)."""

    def _check(self) -> None:
        if self._closed:
            raise ProgrammingError("Cannot operate on a closed cursor.")
        self.connection._check()

    def __enter__(self) -> Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- cluster administration --------------------------------------------------------------


class ClusterClient:
    """A cluster's admin calls (go-dqlite's client.Client): the leader, the members, and
    membership changes, each sent to the leader.

    A change whose answer was lost is checked by reading the membership, so a retried
    `add` or `remove` reports what actually happened instead of failing or repeating.
    """

    def __init__(
        self,
        addresses: str | Sequence[str],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        tls: ssl.SSLContext | None = None,
        max_message_size: int = codec.DEFAULT_MAX_BODY,
    ) -> None:
        self._tls = tls
        self._max_body = max_message_size
        self._channel = channel.Channel(
            parse_addresses(addresses),
            tls=tls,
            max_body=max_message_size,
            session_id=0,
            database=None,
        )
        self._conversation = channel.Conversation(self._channel, timeout)
        self.timeout = timeout

    def close(self) -> None:
        self._channel.drop()

    def __enter__(self) -> ClusterClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def leader(self) -> NodeInfo | None:
        """The leader, or None when no reachable member knows one now."""
        try:
            self._channel.ensure(time.monotonic() + self.timeout)
        except NoLeader as error:
            if error.reachable:
                return None
            raise
        answer = self._call(codec.LeaderRequest())
        if isinstance(answer, codec.ServerResponse) and answer.address:
            return NodeInfo(answer.node_id, answer.address, Role.VOTER)
        return None

    def cluster(self) -> list[NodeInfo]:
        """Every member with its role, as the leader sees them."""
        return channel.members_of(self._call(codec.ClusterRequest(codec.ClusterFormat.V1)))

    def add(self, node_id: int, address: str, role: Role = Role.SPARE) -> None:
        """Add a member (as a spare, as dqlite adds every member), then give it `role`."""
        self._change(
            codec.AddRequest(node_id, address),
            lambda members: any(m.id == node_id for m in members),
        )
        if role != Role.SPARE:
            self.assign(node_id, role)

    def assign(self, node_id: int, role: Role) -> None:
        self._change(
            codec.AssignRequest(node_id, int(role)),
            lambda members: any(m.id == node_id and m.role == role for m in members),
        )

    def remove(self, node_id: int) -> None:
        self._change(
            codec.RemoveRequest(node_id),
            lambda members: all(m.id != node_id for m in members),
        )

    def transfer(self, node_id: int) -> None:
        """Hand leadership to `node_id`."""

        def moved(_members: list[NodeInfo]) -> bool:
            leader = self.leader()
            return leader is not None and leader.id == node_id

        self._change(codec.TransferRequest(node_id), moved)

    def describe(self, address: str) -> tuple[int, int]:
        """(failure domain, weight) of the member at `address`."""
        answer = self._direct(address, codec.DescribeRequest())
        if not isinstance(answer, codec.MetadataResponse):
            raise InterfaceError(f"DESCRIBE was answered with {type(answer).__name__}")
        return answer.failure_domain, answer.weight

    def weight(self, address: str, weight: int) -> None:
        """Set the weight of the member at `address` (for leader elections in dqlite)."""
        answer = self._direct(address, codec.WeightRequest(weight))
        if not isinstance(answer, codec.EmptyResponse):
            raise InterfaceError(f"WEIGHT was answered with {type(answer).__name__}")

    def dump(self, database: str, address: str | None = None) -> list[codec.File]:
        """The files of `database` (the main file and its WAL), from `address` or the leader."""
        request = codec.DumpRequest(database)
        answer = self._direct(address, request) if address else self._call(request)
        if not isinstance(answer, codec.FilesResponse):
            raise InterfaceError(f"DUMP was answered with {type(answer).__name__}")
        return list(answer.files)

    # ------------------------------------------------------------------ internals

    def _call(self, request: codec.Request) -> codec.Response:
        answer = self._conversation.request(lambda _tag: request, resend=channel.Resend.ALWAYS)
        if isinstance(answer, codec.FailureResponse):
            raise channel.error_for(answer)
        return answer

    def _change(self, request: codec.Request, done: Callable[[list[NodeInfo]], bool]) -> None:
        try:
            answer = self._conversation.request(lambda _tag: request, resend=channel.Resend.SESSION)
        except OperationalError as error:
            if "may or may not have been applied" not in str(error):
                raise
            if done(self.cluster()):
                return
            raise
        if isinstance(answer, codec.FailureResponse):
            raise channel.error_for(answer)
        if not isinstance(answer, codec.EmptyResponse):
            raise InterfaceError(f"{type(request).__name__} was answered with {answer}")

    def _direct(self, address: str, request: codec.Request) -> codec.Response:
        deadline = time.monotonic() + self.timeout
        try:
            link = channel.Link.open(
                parse_addresses(address)[0], deadline, self._tls, self._max_body
            )
        except channel.Gone as gone:
            raise OperationalError(f"{address}: {gone}") from None
        try:
            answer = link.call(request, deadline)
        except channel.Gone as gone:
            raise OperationalError(f"{address}: {gone}") from None
        finally:
            link.close()
        if isinstance(answer, codec.FailureResponse):
            raise channel.error_for(answer)
        return answer


__all__ = [
    "BINARY",
    "DATETIME",
    "NUMBER",
    "ROWID",
    "STRING",
    "Binary",
    "ClusterClient",
    "Connection",
    "Cursor",
    "DataError",
    "DatabaseError",
    "Date",
    "DateFromTicks",
    "Error",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "NoLeader",
    "NotSupportedError",
    "OperationalError",
    "ProgrammingError",
    "Time",
    "TimeFromTicks",
    "Timestamp",
    "TimestampFromTicks",
    "Warning",
    "apilevel",
    "client_tls",
    "connect",
    "paramstyle",
    "parse_addresses",
    "threadsafety",
]
