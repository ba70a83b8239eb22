"""The members' dqlite wire protocol server, spoken to byte by byte (the codec over real
sockets), by Debian's `dqlite` shell when installed, and by a member that joins."""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodehost.sqlite import App, Role
from nodehost.sqlite.wire import codec
from tests.sqlite.support import free_addresses, wait_for

NOT_LEADER = 10250


class Raw:
    """A bare wire client: one request, one (or several ROWS) response(s)."""

    def __init__(self, address: str) -> None:
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=20)
        self.sock.sendall(codec.encode_handshake())
        self.frames = codec.FrameReader()

    def send_bytes(self, data: bytes) -> None:
        self.sock.sendall(data)

    def receive(self) -> codec.Response:
        while True:
            frame = self.frames.next_frame()
            if frame is not None:
                return codec.decode_response(frame.header, frame.body)
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed")
            self.frames.feed(data)

    def ask(self, request: codec.Request) -> codec.Response:
        self.sock.sendall(codec.encode_request(request))
        return self.receive()

    def rows(self, request: codec.Request) -> tuple[tuple[str, ...], list[codec.Row]]:
        first = self.ask(request)
        assert isinstance(first, codec.RowsResponse), first
        rows = list(first.rows)
        while not first.done:
            first = self.receive()  # type: ignore[assignment]
            assert isinstance(first, codec.RowsResponse)
            rows += first.rows
        return first.columns, rows

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[App]]:
    root = tmp_path_factory.mktemp("wire")
    addresses = free_addresses(3)
    apps = [
        App(root / f"m{n}", address=a, cluster=addresses, rtt_millisecond=20)
        for n, a in enumerate(addresses)
    ]
    try:
        for app in apps:
            app.ready(30)
        yield apps
    finally:
        for app in apps:
            app.close()


def _leader(apps: list[App]) -> App:
    node = wait_for(lambda: apps[0].leader(), what="a leader")
    return next(app for app in apps if app.id == node.id)


def _open(address: str, name: str, client_id: int = 0) -> Raw:
    raw = Raw(address)
    welcome = raw.ask(codec.ClientRequest(client_id))
    assert isinstance(welcome, codec.WelcomeResponse)
    assert raw.ask(codec.OpenRequest(name)) == codec.DbResponse(0)
    return raw


def test_statements_prepared_and_direct(cluster: list[App]) -> None:
    leader = _leader(cluster)
    raw = Raw(leader.address)
    assert raw.ask(codec.LeaderRequest()) == codec.ServerResponse(leader.id, leader.address)
    assert isinstance(raw.ask(codec.ClientRequest(0)), codec.WelcomeResponse)
    assert raw.ask(codec.OpenRequest("wire")) == codec.DbResponse(0)
    failure = raw.ask(codec.OpenRequest("again"))
    assert isinstance(failure, codec.FailureResponse) and failure.code == 5
    assert raw.ask(
        codec.ExecSqlRequest(
            0, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE, at DATETIME, ok BOOLEAN)"
        )
    ) == codec.ResultResponse(0, 0)
    stmt = raw.ask(codec.PrepareRequest(0, "INSERT INTO t (v, at, ok) VALUES (?, ?, ?)"))
    assert isinstance(stmt, codec.StmtResponse) and stmt.params == 3
    result = raw.ask(codec.ExecRequest(0, stmt.stmt_id, ("a", "2024-01-02 03:04:05", True)))
    assert result == codec.ResultResponse(1, 1)
    duplicate = raw.ask(codec.ExecRequest(0, stmt.stmt_id, ("a", None, False)))
    assert isinstance(duplicate, codec.FailureResponse)
    assert duplicate.code == 2067 and "UNIQUE constraint failed: t.v" in duplicate.message
    assert raw.ask(codec.FinalizeRequest(0, stmt.stmt_id)) == codec.EmptyResponse()
    gone = raw.ask(codec.ExecRequest(0, stmt.stmt_id, ()))
    assert isinstance(gone, codec.FailureResponse) and gone.code == 12
    columns, rows = raw.rows(codec.QuerySqlRequest(0, "SELECT v, at, ok FROM t"))
    assert columns == ("v", "at", "ok")
    assert rows == [("a", codec.Iso8601("2024-01-02 03:04:05"), True)]
    tail = raw.ask(codec.QuerySqlRequest(0, "SELECT 1; SELECT 2"))
    assert isinstance(tail, codec.FailureResponse) and "tail" in tail.message
    bad = raw.ask(codec.ExecSqlRequest(0, "SELEC 1"))
    assert isinstance(bad, codec.FailureResponse) and "syntax error" in bad.message
    # Many rows come back in several ROWS batches.
    raw.ask(
        codec.ExecSqlRequest(
            0,
            "CREATE TABLE many (n); WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 2000) INSERT INTO many SELECT n FROM c",
        )
    )
    _, many = raw.rows(codec.QuerySqlRequest(0, "SELECT n FROM many"))
    assert len(many) == 2000
    raw.close()


def test_transactions_as_separate_requests(cluster: list[App]) -> None:
    leader = _leader(cluster)
    first, second = _open(leader.address, "tx"), _open(leader.address, "tx")
    first.ask(codec.ExecSqlRequest(0, "CREATE TABLE IF NOT EXISTS k (n)"))
    assert first.ask(codec.ExecSqlRequest(0, "BEGIN")) == codec.ResultResponse(0, 0)
    assert first.ask(codec.ExecSqlRequest(0, "INSERT INTO k VALUES (1)")) == codec.ResultResponse(
        1, 1
    )
    assert first.rows(codec.QuerySqlRequest(0, "SELECT count(*) FROM k"))[1] == [(1,)]  # own write
    assert second.rows(codec.QuerySqlRequest(0, "SELECT count(*) FROM k"))[1] == [(0,)]  # not yet
    first.ask(codec.ExecSqlRequest(0, "INSERT INTO k VALUES (2)"))
    assert first.ask(codec.ExecSqlRequest(0, "COMMIT")) == codec.ResultResponse(0, 0)
    assert second.rows(codec.QuerySqlRequest(0, "SELECT sum(n) FROM k"))[1] == [(3,)]
    first.ask(codec.ExecSqlRequest(0, "BEGIN"))
    first.ask(codec.ExecSqlRequest(0, "DELETE FROM k"))
    first.ask(codec.ExecSqlRequest(0, "ROLLBACK"))
    assert second.rows(codec.QuerySqlRequest(0, "SELECT sum(n) FROM k"))[1] == [(3,)]
    first.close()
    second.close()


def test_followers_refuse_statements_but_serve_reads_tagged_none(cluster: list[App]) -> None:
    leader = _leader(cluster)
    writer = _open(leader.address, "follow")
    writer.ask(
        codec.ExecSqlRequest(0, "CREATE TABLE IF NOT EXISTS f (n); INSERT INTO f VALUES (7)")
    )
    follower = next(app for app in cluster if app.id != leader.id)
    raw = _open(follower.address, "follow")
    refused = raw.ask(codec.ExecSqlRequest(0, "INSERT INTO f VALUES (8)"))
    assert isinstance(refused, codec.FailureResponse) and refused.code == NOT_LEADER
    tag = codec.RequestTag(codec.Consistency.NONE)
    wait_for(
        lambda: raw.rows(codec.QuerySqlRequest(0, "SELECT n FROM f", (), tag))[1] == [(7,)],
        what="the follower's copy",
    )
    writer.close()
    raw.close()


def test_a_retried_sequenced_write_is_applied_once(cluster: list[App]) -> None:
    leader = _leader(cluster)
    raw = _open(leader.address, "once", client_id=12345)
    raw.ask(
        codec.ExecSqlRequest(
            0, "CREATE TABLE IF NOT EXISTS o (n)", (), codec.RequestTag(sequence=1)
        )
    )
    request = codec.ExecSqlRequest(0, "INSERT INTO o VALUES (1)", (), codec.RequestTag(sequence=2))
    assert raw.ask(request) == codec.ResultResponse(1, 1)
    raw.close()
    again = _open(leader.address, "once", client_id=12345)  # the answer was "lost": retry
    assert again.ask(request) == codec.ResultResponse(1, 1)
    stale = again.ask(
        codec.ExecSqlRequest(0, "INSERT INTO o VALUES (1)", (), codec.RequestTag(sequence=1))
    )
    assert isinstance(stale, codec.FailureResponse) and stale.message == "stale request"
    assert again.rows(codec.QuerySqlRequest(0, "SELECT count(*) FROM o"))[1] == [(1,)]
    again.close()


def test_cluster_describe_dump_and_hostile_bytes(cluster: list[App]) -> None:
    leader = _leader(cluster)
    raw = Raw(leader.address)
    servers = raw.ask(codec.ClusterRequest(codec.ClusterFormat.V1))
    assert isinstance(servers, codec.ServersResponse)
    assert {(s.address, s.role) for s in servers.servers} == {
        (a.address, Role.VOTER) for a in cluster
    }
    assert raw.ask(codec.DescribeRequest()) == codec.MetadataResponse(0, 0)
    assert raw.ask(codec.WeightRequest(5)) == codec.EmptyResponse()
    assert raw.ask(codec.InterruptRequest(0)) == codec.EmptyResponse()
    # A frame of an unknown type is answered, and the connection goes on.
    raw.send_bytes(struct.pack("<IBBH", 1, 200, 0, 0) + b"\x00" * 8)
    parse = raw.receive()
    assert isinstance(parse, codec.FailureResponse) and parse.code == 1005
    assert isinstance(raw.ask(codec.LeaderRequest()), codec.ServerResponse)
    dumped = raw.ask(codec.DumpRequest("wire"))
    assert isinstance(dumped, codec.FilesResponse) and dumped.files[0].data.startswith(
        b"SQLite format 3"
    )
    # A header announcing an oversized body closes the connection; others are unharmed.
    raw.send_bytes(struct.pack("<IBBH", 0xFFFFFFFF, 8, 0, 0))
    with pytest.raises((ConnectionError, OSError)):
        raw.receive()
    assert isinstance(Raw(leader.address).ask(codec.LeaderRequest()), codec.ServerResponse)


def test_a_member_joins_through_client_addresses_and_is_promoted(tmp_path: Path) -> None:
    first_address, joiner_address = free_addresses(2)
    first = App(tmp_path / "first", address=first_address, rtt_millisecond=20)
    joiner: App | None = None
    try:
        first.ready(30)
        joiner = App(
            tmp_path / "joiner", address=joiner_address, cluster=[first_address], rtt_millisecond=20
        )
        joined = joiner

        def voter() -> bool:
            roles = {n.address: n.role for n in first.cluster()}
            return roles.get(joiner_address) is Role.VOTER

        wait_for(voter, timeout=30, what="the joiner promoted to voter")
        first.open("joined", isolation_level=None).execute("CREATE TABLE j (v)")
        wait_for(
            lambda: (
                joined.open("joined", consistency="none")
                .execute("SELECT count(*) FROM j")
                .fetchone()
                == (0,)
            ),
            what="the joiner's copy",
        )
    finally:
        if joiner is not None:
            joiner.close()
        first.close()


@pytest.mark.skipif(
    shutil.which("dqlite") is None, reason="Debian's go-dqlite (the dqlite shell) is not installed"
)
def test_the_real_dqlite_shell(cluster: list[App]) -> None:
    address = cluster[0].address
    script = (
        "CREATE TABLE IF NOT EXISTS shell (id INTEGER PRIMARY KEY, v TEXT);\n"
        "INSERT INTO shell (v) VALUES ('from the go shell');\n"
        "SELECT id, v FROM shell;\n"
        ".cluster\n"
        ".leader\n"
    )
    done = subprocess.run(
        ["dqlite", "-s", address, "shelldb"],
        input=script,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "1|from the go shell" in done.stdout
    leader = cluster[0].leader()
    assert leader is not None and leader.address in done.stdout
    for app in cluster:
        assert f"|{app.address}|voter" in done.stdout
    wrong = subprocess.run(
        ["dqlite", "-s", address, "shelldb"],
        input="SELEC nonsense;\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "syntax error" in wrong.stdout + wrong.stderr
