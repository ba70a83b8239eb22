"""The remote client against broken and hostile members: a fake member on a real socket
answers the handshake like dqlite, then misbehaves. Every case ends in a clean PEP 249
error within the timeout: no hang, no huge allocation, no other exception."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from nodehost.sqlite import client
from nodehost.sqlite.wire import codec

Misbehave = Callable[[socket.socket, codec.Request], bool]  # True: handled, stop


class FakeMember:
    """Answers LEADER (itself), CLIENT, OPEN and CLUSTER as a dqlite leader would, and
    hands every other request to `misbehave`."""

    def __init__(self, misbehave: Misbehave) -> None:
        self.misbehave = misbehave
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.connections: list[socket.socket] = []
        self.closed = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.closed = True
        for connection in self.connections:
            connection.close()
        self.thread.join(timeout=5)
        self.listener.close()

    def _serve(self) -> None:
        self.listener.settimeout(0.05)  # closing a socket does not wake a blocked accept()
        while not self.closed:
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            connection.settimeout(None)
            self.connections.append(connection)
            threading.Thread(target=self._talk, args=(connection,), daemon=True).start()

    def _talk(self, connection: socket.socket) -> None:
        reader = codec.FrameReader(handshake=True)
        try:
            while True:
                data = connection.recv(65536)
                if not data:
                    return
                reader.feed(data)
                while (frame := reader.next_frame()) is not None:
                    request = codec.decode_request(frame.header, frame.body)
                    answer = self._normal(request)
                    if answer is not None:
                        connection.sendall(codec.encode_response(answer))
                    elif self.misbehave(connection, request):
                        return
        except OSError:
            return

    def _normal(self, request: codec.Request) -> codec.Response | None:
        match request:
            case codec.LeaderRequest():
                return codec.ServerResponse(1, self.address)
            case codec.ClientRequest():
                return codec.WelcomeResponse(15000)
            case codec.OpenRequest():
                return codec.DbResponse(0)
            case codec.ClusterRequest():
                return codec.ServersResponse((codec.NodeInfo(1, self.address, 0),))
        return None


@pytest.fixture
def member_factory() -> Iterator[Callable[[Misbehave], FakeMember]]:
    members: list[FakeMember] = []

    def make(misbehave: Misbehave) -> FakeMember:
        member = FakeMember(misbehave)
        members.append(member)
        return member

    yield make
    for member in members:
        member.close()


def send(raw: bytes) -> Misbehave:
    def misbehave(connection: socket.socket, request: codec.Request) -> bool:
        connection.sendall(raw)
        return False

    return misbehave


ROWS_HEADER = struct.pack("<IBBH", 0xFFFFFFFF, codec.ResponseType.ROWS, 0, 0)
HUGE_COLUMNS = struct.pack("<IBBH", 2, codec.ResponseType.ROWS, 0, 0) + struct.pack("<QQ", 2**60, 0)
NOT_UTF8 = (
    struct.pack("<IBBH", 2, codec.ResponseType.FAILURE, 0, 0)
    + struct.pack("<Q", 1)
    + (b"\xff\xfe\x00\x00\x00\x00\x00\x00")
)
UNKNOWN_TYPE = struct.pack("<IBBH", 1, 99, 0, 0) + bytes(8)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (ROWS_HEADER, "more than the limit"),
        (HUGE_COLUMNS, "column count"),
        (NOT_UTF8, "not valid UTF-8"),
        (UNKNOWN_TYPE, "unknown response type 99"),
    ],
    ids=["4 GiB body announced", "2**60 columns", "text not UTF-8", "unknown type"],
)
def test_a_malformed_answer_is_an_operational_error(
    member_factory: Callable[[Misbehave], FakeMember], raw: bytes, reason: str
) -> None:
    member = member_factory(send(raw))
    conn = client.connect(member.address, database="demo", timeout=2)
    started = time.monotonic()
    with pytest.raises(client.OperationalError, match=reason):
        conn.execute("SELECT 1")  # a read is resent until the timeout: same answer
    assert time.monotonic() - started < 10
    conn.close()


def test_a_write_to_a_member_that_sends_garbage_is_an_unknown_outcome(
    member_factory: Callable[[Misbehave], FakeMember],
) -> None:
    member = member_factory(send(HUGE_COLUMNS))
    conn = client.connect(member.address, database="demo", timeout=2, isolation_level=None)
    with pytest.raises(client.OperationalError, match="may or may not have been applied"):
        conn.execute("INSERT INTO t VALUES (1)")
    conn.close()


def test_a_silent_member_costs_the_timeout_not_a_hang(
    member_factory: Callable[[Misbehave], FakeMember],
) -> None:
    member = member_factory(lambda connection, request: False)  # never answers
    conn = client.connect(member.address, database="demo", timeout=1)
    started = time.monotonic()
    with pytest.raises(client.OperationalError, match="no answer"):
        conn.execute("SELECT 1")
    assert 0.9 < time.monotonic() - started < 10
    conn.close()


def test_a_member_that_hangs_up_mid_result_fails_the_fetch(
    member_factory: Callable[[Misbehave], FakeMember],
) -> None:
    def one_batch_then_gone(connection: socket.socket, request: codec.Request) -> bool:
        part = codec.RowsResponse(("n",), ((1,), (2,)), done=False)
        connection.sendall(codec.encode_response(part))
        connection.shutdown(socket.SHUT_RDWR)
        return True

    member = member_factory(one_batch_then_gone)
    conn = client.connect(member.address, database="demo", timeout=2)
    cursor = conn.execute("SELECT n FROM t")
    assert cursor.fetchmany(2) == [(1,), (2,)]
    with pytest.raises(client.OperationalError, match="lost while reading rows"):
        cursor.fetchone()
    conn.close()


def test_a_member_that_refuses_the_database_is_a_clear_error(
    member_factory: Callable[[Misbehave], FakeMember],
) -> None:
    class Refusing(FakeMember):
        def _normal(self, request: codec.Request) -> codec.Response | None:
            if isinstance(request, codec.OpenRequest):
                return codec.FailureResponse(14, f"no such database: {request.name}")
            return super()._normal(request)

    member = Refusing(lambda connection, request: False)
    try:
        with pytest.raises(client.OperationalError, match="cannot open database 'nope'"):
            client.connect(member.address, database="nope", timeout=2)
    finally:
        member.close()


def test_no_reachable_member_is_a_clear_operational_error() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there now
    with pytest.raises(
        client.OperationalError,
        match=rf"no member reachable \(127\.0\.0\.1:{port}: connection refused\)",
    ):
        client.connect(f"127.0.0.1:{port}", database="demo", timeout=0.5)


def test_bad_arguments_are_interface_errors() -> None:
    with pytest.raises(client.InterfaceError, match="not a member address"):
        client.connect("localhost", database="demo")
    with pytest.raises(client.InterfaceError, match="no member address"):
        client.connect("", database="demo")
    with pytest.raises(client.InterfaceError, match="database name"):
        client.connect("127.0.0.1:1", database="")
    with pytest.raises(client.ProgrammingError, match="unknown consistency"):
        client.connect("127.0.0.1:1", database="d", consistency="eventual")
