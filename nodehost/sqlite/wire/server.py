"""A member's dqlite wire protocol server: dqlite's own clients (the `dqlite` shell,
go-dqlite) and nodehost's client talk to the cluster through it.

Rules:
- One asyncio loop on its own thread reads and writes every connection; a request that
  may wait for Raft (a statement, a membership change) runs on a worker thread, so the
  loop never blocks. Requests of one connection are answered in order, one at a time,
  as dqlite's clients expect.
- A connection is a session.Session: statements, transactions (BEGIN, statements,
  COMMIT as separate requests) and consistency behave exactly as for an embedded
  connection; what differs is how the answers are spelled (codec.py, wire/README.md).
- As dqlite: statements need the leader (FAILURE 10250 "not leader" elsewhere, so
  clients move to it), except reads tagged with consistency NONE, served by any member.
  Membership requests (ADD, ASSIGN, REMOVE, TRANSFER) need the leader too.
- Every peer is hostile: a malformed frame is answered with DQLITE_PARSE and the
  connection goes on; a stream that cannot be resynchronised (bad handshake, oversized
  header) is closed. No request can make the server allocate past the frame limit.
- With TLS options the listener requires client certificates signed by the cluster CA.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from nodehost.config import parse_address
from nodehost.sqlite import errors
from nodehost.sqlite.command import Outcome, Statement, StatementResult, Value
from nodehost.sqlite.database import check_name
from nodehost.sqlite.members import NodeInfo
from nodehost.sqlite.session import Backend, Consistency, Session
from nodehost.sqlite.statements import Control, StatementInfo, split
from nodehost.sqlite.wire import codec


class Member(Protocol):
    """What the server needs of the App it serves."""

    id: int

    def leader(self) -> NodeInfo | None: ...
    def is_leader(self) -> bool: ...
    def cluster(self, timeout: float = 5.0) -> list[NodeInfo]: ...
    def backend(self) -> Backend: ...
    def add_member(self, member_id: int, address: str, timeout: float = 10.0) -> None: ...
    def assign(self, member_id: int, role: int, timeout: float = 10.0) -> None: ...
    def remove_member(self, member_id: int, timeout: float = 10.0) -> None: ...
    def transfer(self, member_id: int, timeout: float = 10.0) -> None: ...
    def dump(self, name: str) -> bytes: ...


log = logging.getLogger("nodehost.sqlite.wire")

NOT_LEADER = 10250  # SQLITE_IOERR_NOT_LEADER
LEADERSHIP_LOST = 10506  # SQLITE_IOERR_LEADERSHIP_LOST
DQLITE_PARSE = 1005
NOT_FOUND = 12  # SQLITE_NOTFOUND
HEARTBEAT_TIMEOUT_MS = 15_000
_TIME_TYPES = ("DATETIME", "DATE", "TIMESTAMP")
_CONSISTENCY = {
    codec.Consistency.STRONG: Consistency.STRONG,
    codec.Consistency.WEAK: Consistency.WEAK,
    codec.Consistency.NONE: Consistency.NONE,
}


class Failure(Exception):
    """Answer the request with FAILURE(code, message)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def server_ssl_context(ca_file: str, cert_file: str, key_file: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=ca_file)
    context.load_cert_chain(cert_file, key_file)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


class WireServer:
    """Serves dqlite's client protocol for one App on `address`."""

    def __init__(
        self,
        app: Member,
        address: str,
        ssl_context: ssl.SSLContext | None = None,
        *,
        max_body: int = codec.DEFAULT_MAX_BODY,
        workers: int = 96,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.app = app
        self.host, self.port = parse_address(address, "address")
        self.ssl_context = ssl_context
        self.max_body = max_body
        self.executor = ThreadPoolExecutor(workers, thread_name_prefix="nodehost-sql-wire")
        # The member's loop when it has one (shared with its write batcher), else our own.
        self._own_loop = loop is None
        self._loop = loop or asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="nodehost-sql-wire-loop", daemon=True
        )

    def start(self) -> None:
        if self._own_loop:
            self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        future.result(timeout=30)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, self.host.strip("[]"), self.port, ssl=self.ssl_context, reuse_address=True
        )

    def close(self) -> None:
        if not self._loop.is_running():
            self.executor.shutdown(wait=False)
            return

        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=10)
        if self._own_loop:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        connection = _Connection(self, writer)
        try:
            await connection.serve(reader)
        except (asyncio.CancelledError, ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:
            log.exception("wire connection failed")
        finally:
            self._connections.discard(task)
            connection.close()
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


class _Connection:
    def __init__(self, server: WireServer, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.app = server.app
        self.writer = writer
        self.client_id = 0
        self.session: Session | None = None
        self.backend: Any = None
        self.statements: dict[int, tuple[str, StatementInfo]] = {}
        self.next_statement = 0
        self.protocol = codec.PROTOCOL_VERSION

    async def serve(self, reader: asyncio.StreamReader) -> None:
        frames = codec.FrameReader(handshake=True, max_body=self.server.max_body)
        loop = asyncio.get_running_loop()
        while True:
            data = await reader.read(65536)
            if not data:
                return
            frames.feed(data)
            while True:
                try:
                    frame = frames.next_frame()
                except codec.DecodeError as exc:
                    log.info("closing a wire connection: %s", exc)
                    return
                if frame is None:
                    break
                self.protocol = frames.protocol_version or codec.PROTOCOL_VERSION
                try:
                    request = codec.decode_request(frame.header, frame.body)
                except codec.DecodeError as exc:
                    self._send([codec.FailureResponse(DQLITE_PARSE, f"malformed request: {exc}")])
                    continue
                fast = self.fast_path(request)
                if fast is not None:
                    responses = await fast
                else:
                    responses = await loop.run_in_executor(
                        self.server.executor, self.handle, request
                    )
                self._send(responses)
                await self.writer.drain()

    def _send(self, responses: list[codec.Response]) -> None:
        self.writer.write(b"".join(codec.encode_response(r) for r in responses))

    def close(self) -> None:
        if self.session is not None:
            with contextlib.suppress(Exception):
                self.session.rollback()

    # ------------------------------------------------------------------ dispatch

    def handle(self, request: codec.Request) -> list[codec.Response]:
        try:
            handler = _HANDLERS[type(request)]
            return handler(self, request)
        except Failure as failure:
            return [codec.FailureResponse(failure.code, failure.message)]
        except errors.Error as exc:
            return [self._failure(exc)]
        except codec.EncodeError as exc:
            return [codec.FailureResponse(1, f"the result cannot be sent: {exc}")]

    def _failure(self, exc: errors.Error) -> codec.FailureResponse:
        """SQLite's code (or dqlite's for leadership) and, for nodehost's client, the
        PEP 249 class the embedded connection would have raised."""
        error_class = next(
            (number for cls, number in _ERROR_CLASSES if isinstance(exc, cls)),
            codec.ErrorClass.UNSPECIFIED,
        )
        return codec.FailureResponse(self._code(exc), str(exc), error_class)

    def _code(self, exc: errors.Error) -> int:
        if exc.code:
            return exc.code
        if isinstance(exc, errors.OperationalError):
            return LEADERSHIP_LOST if self._leads() else NOT_LEADER
        return 1

    def _leads(self) -> bool:
        return self.app.is_leader()

    def _require_leader(self) -> None:
        if not self._leads():
            raise Failure(NOT_LEADER, "not leader")

    def _database(self, db_id: int) -> Session:
        if self.session is None or db_id != 0:
            raise Failure(NOT_FOUND, "no database opened")
        return self.session

    # ------------------------------------------------------------------ fast path

    def fast_path(self, request: codec.Request) -> Coroutine[Any, Any, list[codec.Response]] | None:
        """Prepared statements outside a transaction run on the loop: a write is one
        awaited proposal, a read one awaited ReadIndex round, no thread hand-off."""
        if not isinstance(request, codec.ExecRequest | codec.QueryRequest):
            return None
        session = self.session
        found = self.statements.get(request.stmt_id)
        if session is None or request.db_id != 0 or found is None or session.in_transaction:
            return None
        sql, info = found
        if info.control is not Control.NONE or info.parameter_count < 0:
            return None
        return self._fast(request, session, sql, info)

    async def _fast(
        self,
        request: codec.ExecRequest | codec.QueryRequest,
        session: Session,
        sql: str,
        info: StatementInfo,
    ) -> list[codec.Response]:
        backend = self.backend
        consistency = _CONSISTENCY[request.tag.consistency]
        try:
            parameters = session.check_parameters(info, tuple(_plain(v) for v in request.params))
            if info.readonly:
                if consistency is not Consistency.NONE and not self._leads():
                    raise Failure(NOT_LEADER, "not leader")
                results = await backend.read_async(
                    session.database, [Statement(sql, [parameters])], consistency, session.timeout
                )
                result = results[0]
                if isinstance(request, codec.ExecRequest):
                    if result.rows:
                        raise Failure(1, "rows yielded when none expected for EXEC request")
                    return [codec.ResultResponse(0, 0)]
                return _rows(result)
            if not self._leads():
                raise Failure(NOT_LEADER, "not leader")
            sequence = request.tag.sequence if self.client_id else None
            if sequence is None:
                own = session.client_id
                session.client_id = _random_client(session)
                try:
                    command = session.autocommit_command(sql, parameters, None)
                finally:
                    session.client_id = own
            else:
                command = session.autocommit_command(sql, parameters, sequence)
            outcome = await backend.write_async(command, session.timeout)
            if outcome.outcome is not Outcome.COMMITTED:
                raise session.failure(outcome)
            result = outcome.results[0]
            if isinstance(request, codec.QueryRequest):
                return _rows(result)
            return [codec.ResultResponse(result.lastrowid, max(result.rowcount, 0))]
        except Failure as failure:
            return [codec.FailureResponse(failure.code, failure.message)]
        except errors.Error as exc:
            return [self._failure(exc)]
        except codec.EncodeError as exc:
            return [codec.FailureResponse(1, f"the result cannot be sent: {exc}")]

    # ------------------------------------------------------------------ handlers

    def leader(self, request: codec.LeaderRequest) -> list[codec.Response]:
        node = self.app.leader()
        if self.protocol == codec.PROTOCOL_VERSION_LEGACY:
            return [codec.ServerLegacyResponse(node.address if node else "")]
        return [
            codec.ServerResponse(node.id, node.address) if node else codec.ServerResponse(0, "")
        ]

    def client(self, request: codec.ClientRequest) -> list[codec.Response]:
        self.client_id = request.client_id
        if self.session is not None and self.client_id:
            self.session.client_id = self.client_id & 0x7FFF_FFFF_FFFF_FFFF or 1
        return [codec.WelcomeResponse(HEARTBEAT_TIMEOUT_MS, codec.SERVER_FEATURE_SESSIONS)]

    def heartbeat(self, request: codec.HeartbeatRequest) -> list[codec.Response]:
        nodes = tuple(codec.NodeInfo(n.id, n.address, None) for n in self.app.cluster())
        return [codec.ServersResponse(nodes, codec.ClusterFormat.V0)]

    def open(self, request: codec.OpenRequest) -> list[codec.Response]:
        if self.session is not None:
            raise Failure(5, "a database for this connection is already open")
        try:
            check_name(request.name)
        except ValueError as exc:
            raise Failure(1, str(exc)) from None
        self.backend = self.app.backend()
        self.session = Session(self.backend, request.name)
        if self.client_id:
            self.session.client_id = self.client_id & 0x7FFF_FFFF_FFFF_FFFF or 1
        return [codec.DbResponse(0)]

    def prepare(self, request: codec.PrepareRequest) -> list[codec.Response]:
        session = self._database(request.db_id)
        pieces = split(request.sql)
        if not pieces:
            raise Failure(0, "empty statement")
        first = pieces[0]
        info = session.prepare(first)
        offset = None
        if request.schema >= 1:
            offset = _tail_offset(request.sql)
        elif len(pieces) > 1:
            raise Failure(1, "nonempty statement tail")
        self.next_statement += 1
        self.statements[self.next_statement] = (first, info)
        count = max(info.parameter_count, 0)
        return [codec.StmtResponse(request.db_id, self.next_statement, count, offset)]

    def finalize(self, request: codec.FinalizeRequest) -> list[codec.Response]:
        self._database(request.db_id)
        if self.statements.pop(request.stmt_id, None) is None:
            raise Failure(NOT_FOUND, "no statement with the given id")
        return [codec.EmptyResponse()]

    def _statement(self, db_id: int, stmt_id: int) -> tuple[Session, str, StatementInfo]:
        session = self._database(db_id)
        found = self.statements.get(stmt_id)
        if found is None:
            raise Failure(NOT_FOUND, "no statement with the given id")
        return session, found[0], found[1]

    def _run(
        self,
        session: Session,
        sql: str,
        info: StatementInfo | None,
        params: tuple[codec.Value, ...],
        tag: codec.RequestTag,
    ) -> StatementResult:
        consistency = _CONSISTENCY[tag.consistency]
        readonly = info.readonly and info.control is Control.NONE if info else False
        if not (readonly and consistency is Consistency.NONE and not session.in_transaction):
            self._require_leader()
        plain = tuple(_plain(value) for value in params)
        own = session.client_id
        if tag.sequence is None or not self.client_id:
            session.client_id = _random_client(session)
        try:
            execution = session.execute(
                sql,
                [plain],
                consistency=consistency,
                sequence=tag.sequence if self.client_id else None,
            )
        finally:
            session.client_id = own
        return execution.result

    def exec(self, request: codec.ExecRequest) -> list[codec.Response]:
        session, sql, info = self._statement(request.db_id, request.stmt_id)
        result = self._run(session, sql, info, request.params, request.tag)
        if info.readonly and info.control is Control.NONE and result.rows:
            raise Failure(1, "rows yielded when none expected for EXEC request")
        return [codec.ResultResponse(result.lastrowid, max(result.rowcount, 0))]

    def query(self, request: codec.QueryRequest) -> list[codec.Response]:
        session, sql, info = self._statement(request.db_id, request.stmt_id)
        result = self._run(session, sql, info, request.params, request.tag)
        return _rows(result)

    def exec_sql(self, request: codec.ExecSqlRequest) -> list[codec.Response]:
        session = self._database(request.db_id)
        pieces = split(request.sql)
        if not pieces:
            raise Failure(0, "empty statement")
        result = StatementResult(rowcount=0)
        for number, sql in enumerate(pieces):
            info = session.prepare(sql)
            params = request.params if number == 0 else ()
            tag = request.tag if len(pieces) == 1 else codec.RequestTag(request.tag.consistency)
            result = self._run(session, sql, info, params, tag)
        return [codec.ResultResponse(result.lastrowid, max(result.rowcount, 0))]

    def query_sql(self, request: codec.QuerySqlRequest) -> list[codec.Response]:
        session = self._database(request.db_id)
        pieces = split(request.sql)
        if not pieces:
            raise Failure(0, "empty statement")
        if len(pieces) > 1:
            raise Failure(1, "nonempty statement tail")
        info = session.prepare(pieces[0])
        return _rows(self._run(session, pieces[0], info, request.params, request.tag))

    def interrupt(self, request: codec.InterruptRequest) -> list[codec.Response]:
        return [codec.EmptyResponse()]

    def add(self, request: codec.AddRequest) -> list[codec.Response]:
        self._require_leader()
        self.app.add_member(request.node_id, request.address)
        return [codec.EmptyResponse()]

    def assign(self, request: codec.AssignRequest) -> list[codec.Response]:
        self._require_leader()
        role = codec.Role.VOTER if request.role is None else request.role
        self.app.assign(request.node_id, int(role))
        return [codec.EmptyResponse()]

    def remove(self, request: codec.RemoveRequest) -> list[codec.Response]:
        self._require_leader()
        self.app.remove_member(request.node_id)
        return [codec.EmptyResponse()]

    def dump(self, request: codec.DumpRequest) -> list[codec.Response]:
        try:
            check_name(request.name)
        except ValueError as exc:
            raise Failure(1, str(exc)) from None
        image = self.app.dump(request.name)
        return [
            codec.FilesResponse(
                (codec.File(request.name, image), codec.File(request.name + "-wal", b""))
            )
        ]

    def cluster(self, request: codec.ClusterRequest) -> list[codec.Response]:
        v1 = request.format == codec.ClusterFormat.V1
        nodes = tuple(
            codec.NodeInfo(n.id, n.address, int(n.role) if v1 else None) for n in self.app.cluster()
        )
        return [
            codec.ServersResponse(nodes, codec.ClusterFormat.V1 if v1 else codec.ClusterFormat.V0)
        ]

    def transfer(self, request: codec.TransferRequest) -> list[codec.Response]:
        self._require_leader()
        self.app.transfer(request.node_id)
        return [codec.EmptyResponse()]

    def describe(self, request: codec.DescribeRequest) -> list[codec.Response]:
        return [codec.MetadataResponse(0, 0)]

    def weight(self, request: codec.WeightRequest) -> list[codec.Response]:
        return [codec.EmptyResponse()]


# Most specific first: IntegrityError is also a DatabaseError.
_ERROR_CLASSES: tuple[tuple[type[errors.Error], int], ...] = (
    (errors.IntegrityError, codec.ErrorClass.INTEGRITY),
    (errors.DataError, codec.ErrorClass.DATA),
    (errors.OperationalError, codec.ErrorClass.OPERATIONAL),
    (errors.ProgrammingError, codec.ErrorClass.PROGRAMMING),
    (errors.NotSupportedError, codec.ErrorClass.NOT_SUPPORTED),
    (errors.InternalError, codec.ErrorClass.INTERNAL),
    (errors.DatabaseError, codec.ErrorClass.DATABASE),
    (errors.InterfaceError, codec.ErrorClass.INTERFACE),
)

_HANDLERS: dict[type, Callable[[_Connection, Any], list[codec.Response]]] = {
    codec.LeaderRequest: _Connection.leader,
    codec.ClientRequest: _Connection.client,
    codec.HeartbeatRequest: _Connection.heartbeat,
    codec.OpenRequest: _Connection.open,
    codec.PrepareRequest: _Connection.prepare,
    codec.ExecRequest: _Connection.exec,
    codec.QueryRequest: _Connection.query,
    codec.FinalizeRequest: _Connection.finalize,
    codec.ExecSqlRequest: _Connection.exec_sql,
    codec.QuerySqlRequest: _Connection.query_sql,
    codec.InterruptRequest: _Connection.interrupt,
    codec.AddRequest: _Connection.add,
    codec.AssignRequest: _Connection.assign,
    codec.RemoveRequest: _Connection.remove,
    codec.DumpRequest: _Connection.dump,
    codec.ClusterRequest: _Connection.cluster,
    codec.TransferRequest: _Connection.transfer,
    codec.DescribeRequest: _Connection.describe,
    codec.WeightRequest: _Connection.weight,
}


def _random_client(session: Session) -> int:
    """The session's own id for requests the client did not number."""
    own: int | None = getattr(session, "_own_client", None)
    if own is None:
        import os

        own = int.from_bytes(os.urandom(8), "big") >> 1 or 1
        session._own_client = own  # type: ignore[attr-defined]
    return own


def _plain(value: object) -> Value:
    """A wire parameter as SQLite stores it (dqlite binds its own types so)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, codec.Iso8601):
        return value.text
    if isinstance(value, codec.UnixTime):
        return value.seconds
    return value  # type: ignore[return-value]


def _tail_offset(sql: str) -> int:
    """Byte offset in `sql` (UTF-8) where the statements after the first begin."""
    import apsw

    position = sql.find(";")
    while position != -1:
        if apsw.complete(sql[: position + 1]):
            return len(sql[: position + 1].encode("utf-8"))
        position = sql.find(";", position + 1)
    return len(sql.encode("utf-8"))


def _rows(result: StatementResult) -> list[codec.Response]:
    columns = tuple(result.columns)
    rows = result.rows
    if any(
        declared.upper() in _TIME_TYPES or declared.upper() == "BOOLEAN"
        for declared in result.declared_types
    ):
        rows = [_typed(row, result.declared_types) for row in rows]
    return list(codec.batch_rows(columns, rows))


def _typed(row: tuple[Value, ...], declared: list[str]) -> tuple[Any, ...]:
    """dqlite's typing of DATETIME/DATE/TIMESTAMP and BOOLEAN columns."""
    typed: list[Any] = []
    for value, kind in zip(row, declared, strict=False):
        upper = kind.upper()
        if upper in _TIME_TYPES and isinstance(value, str):
            typed.append(codec.Iso8601(value))
        elif upper in _TIME_TYPES and isinstance(value, int):
            typed.append(codec.UnixTime(value))
        elif upper == "BOOLEAN" and isinstance(value, int):
            typed.append(bool(value))
        else:
            typed.append(value)
    return tuple(typed)
