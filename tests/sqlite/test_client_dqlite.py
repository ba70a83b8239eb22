"""The remote client against the real dqlite (go-dqlite's `dqlite-demo`, three processes):
wire compatibility, leader discovery and failover, and what the client does when a
server without sessions loses a write's answer. Skipped where dqlite is not installed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodehost.sqlite import client
from nodehost.sqlite.client import ClusterClient, connect
from nodehost.sqlite.members import Role
from nodehost.sqlite.wire import codec
from tests.sqlite.dqlite_demo import DqliteDemoCluster, needs_dqlite_demo, start_dqlite_demo
from tests.sqlite.wireproxy import WireProxy

pytestmark = [needs_dqlite_demo, pytest.mark.integration]


@pytest.fixture(scope="module")
def dqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DqliteDemoCluster]:
    cluster = start_dqlite_demo(tmp_path_factory.mktemp("dqlite"))
    yield cluster
    cluster.stop_all()


@pytest.fixture
def fresh_dqlite(tmp_path: Path) -> Iterator[DqliteDemoCluster]:
    """A cluster of its own, for tests that kill members."""
    cluster = start_dqlite_demo(tmp_path)
    yield cluster
    cluster.stop_all()


def database() -> str:
    return f"db-{uuid.uuid4().hex[:8]}"


def test_the_client_finds_the_leader_from_a_follower_address(dqlite: DqliteDemoCluster) -> None:
    leader = dqlite.leader()
    followers = [a for a in dqlite.addresses if a != leader]
    with connect(followers[0], database=database(), timeout=10) as conn:
        assert conn.leader_address == leader
        assert conn.leader() is not None
        members = conn.cluster()
    assert sorted(m.address for m in members) == sorted(dqlite.addresses)
    assert {m.role for m in members} == {Role.VOTER}


def test_statements_parameters_and_types(dqlite: DqliteDemoCluster) -> None:
    conn = connect(",".join(dqlite.addresses), database=database(), timeout=10)
    conn.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, score REAL, data BLOB, "
        "born DATETIME, stamp TIMESTAMP, ok BOOLEAN)"
    )
    cursor = conn.execute(
        "INSERT INTO t (name, score, data, born, stamp, ok) VALUES (?, ?, ?, ?, ?, ?)",
        ("ann", 1.5, b"\x00\x01", "2024-05-06 07:08:09", 1700000000, True),
    )
    assert (cursor.rowcount, cursor.lastrowid) == (1, 1)
    assert conn.in_transaction  # sqlite3's implicit BEGIN before DML
    conn.executemany(
        "INSERT INTO t (name, born) VALUES (:name, :born)",
        [{"name": "bob", "born": None}, {"name": "cy", "born": "2000-01-01"}],
    )
    conn.commit()
    assert not conn.in_transaction
    cursor = conn.execute("SELECT name, score, data, born, stamp, ok FROM t ORDER BY id")
    assert [d[0] for d in cursor.description or ()] == [
        "name",
        "score",
        "data",
        "born",
        "stamp",
        "ok",
    ]
    # As sqlite3 returns them: dates as stored, booleans as integers, NULL as None; but
    # dqlite's server sends a NULL in a BOOLEAN column as false (nodehost's sends NULL).
    assert cursor.fetchall() == [
        ("ann", 1.5, b"\x00\x01", "2024-05-06 07:08:09", 1700000000, 1),
        ("bob", None, None, None, None, 0),
        ("cy", None, None, "2000-01-01", None, 0),
    ]
    assert conn.execute("SELECT count(*) FROM t WHERE name = ?3", (0, 0, "bob")).fetchone() == (1,)
    assert conn.execute("UPDATE t SET score = 2 WHERE score IS NULL").rowcount == 2
    conn.rollback()
    assert conn.execute("SELECT count(*) FROM t WHERE score = 2").fetchone() == (0,)
    conn.close()


def test_errors_are_pep_249_exceptions_with_sqlite_codes(dqlite: DqliteDemoCluster) -> None:
    conn = connect(dqlite.addresses, database=database(), timeout=10, isolation_level=None)
    conn.execute("CREATE TABLE u (k TEXT UNIQUE)")
    conn.execute("INSERT INTO u VALUES ('a')")
    with pytest.raises(client.IntegrityError, match=r"UNIQUE constraint failed: u\.k") as caught:
        conn.execute("INSERT INTO u VALUES ('a')")
    assert caught.value.code == 2067
    with pytest.raises(client.ProgrammingError, match="syntax error"):
        conn.execute("INSERT INTO u VALUES (1))")
    with pytest.raises(client.ProgrammingError, match="incomplete input"):
        conn.execute("INSERT INTO u VALUES (")
    with pytest.raises(client.ProgrammingError, match="no such table: missing"):
        conn.execute("SELECT * FROM missing")
    with pytest.raises(client.ProgrammingError, match="Incorrect number of bindings"):
        conn.execute("SELECT ?", (1, 2))
    with pytest.raises(client.ProgrammingError, match="binding parameter :x"):
        conn.execute("SELECT :x", {"y": 1})
    with pytest.raises(client.InterfaceError, match="type 'list' is not supported"):
        conn.execute("SELECT ?", ([1],))
    with pytest.raises(client.DataError, match="too large"):
        conn.execute("SELECT ?", (2**64,))
    assert conn.execute("SELECT count(*) FROM u").fetchone() == (1,)  # nothing was lost
    conn.close()
    with pytest.raises(client.ProgrammingError, match="closed database"):
        conn.execute("SELECT 1")


def test_a_long_result_streams_and_survives_another_request(dqlite: DqliteDemoCluster) -> None:
    conn = connect(dqlite.addresses, database=database(), timeout=10, isolation_level=None)
    conn.execute("CREATE TABLE n (v INTEGER)")
    conn.execute(
        "INSERT INTO n WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
        "WHERE x < 5000) SELECT x FROM c"
    )
    first = conn.execute("SELECT v FROM n ORDER BY v")  # dqlite sends ~4 KiB batches
    assert first.fetchone() == (1,)
    second = conn.execute("SELECT count(*) FROM n")  # needs the link: reads the rest first
    assert second.fetchone() == (5000,)
    assert [row[0] for row in first.fetchall()] == list(range(2, 5001))

    third = conn.execute("SELECT v FROM n ORDER BY v")
    assert third.fetchmany(3) == [(1,), (2,), (3,)]
    third.close()  # interrupts the query on the server
    assert conn.execute("SELECT max(v) FROM n").fetchone() == (5000,)
    conn.close()


def test_admin_calls(dqlite: DqliteDemoCluster) -> None:
    with ClusterClient(dqlite.addresses[-1], timeout=10) as admin:
        leader = admin.leader()
        assert leader is not None and leader.address == dqlite.leader()
        assert len(admin.cluster()) == 3
        assert admin.describe(dqlite.addresses[0]) == (0, 0)
        admin.weight(dqlite.addresses[0], 5)
        assert admin.describe(dqlite.addresses[0]) == (0, 5)
        name = database()
        with connect(dqlite.addresses, database=name, isolation_level=None) as conn:
            conn.execute("CREATE TABLE d (x)")
        files = admin.dump(name)
        assert [f.name for f in files] == [name, f"{name}-wal"]
        assert files[0].data.startswith(b"SQLite format 3\x00")


def test_failover_writes_resume_through_the_new_leader(fresh_dqlite: DqliteDemoCluster) -> None:
    conn = connect(fresh_dqlite.addresses, database=database(), timeout=20, isolation_level=None)
    conn.execute("CREATE TABLE f (v INTEGER)")
    conn.execute("INSERT INTO f VALUES (1)")
    old = fresh_dqlite.leader()
    fresh_dqlite.kill(old)
    conn.execute("INSERT INTO f VALUES (2)")  # finds the new leader within the timeout
    assert conn.leader_address not in ("", old)
    assert conn.execute("SELECT v FROM f ORDER BY v").fetchall() == [(1,), (2,)]
    conn.close()


def test_a_transaction_whose_leader_dies_is_reported_rolled_back(
    fresh_dqlite: DqliteDemoCluster,
) -> None:
    conn = connect(fresh_dqlite.addresses, database=database(), timeout=20)
    conn.execute("CREATE TABLE g (v INTEGER)")
    conn.commit()
    conn.execute("INSERT INTO g VALUES (1)")
    assert conn.in_transaction
    fresh_dqlite.kill(fresh_dqlite.leader())
    with pytest.raises(client.OperationalError, match="transaction was rolled back"):
        conn.execute("INSERT INTO g VALUES (2)")
    with pytest.raises(client.OperationalError, match="nothing was committed"):
        conn.commit()
    assert not conn.in_transaction
    assert conn.execute("SELECT count(*) FROM g").fetchone() == (0,)
    conn.close()


def test_a_lost_write_answer_from_a_server_without_sessions_is_an_unknown_outcome(
    dqlite: DqliteDemoCluster,
) -> None:
    proxy = WireProxy(dqlite.addresses)
    try:
        conn = connect(proxy.addresses, database=database(), timeout=10, isolation_level=None)
        conn.execute("CREATE TABLE w (v INTEGER)")
        fault = proxy.lose_answer(
            lambda r: isinstance(r, codec.ExecSqlRequest) and r.sql.startswith("INSERT")
        )
        with pytest.raises(client.OperationalError, match="may or may not have been applied"):
            conn.execute("INSERT INTO w VALUES (1)")
        assert fault.hits == 1
        # never resent: dqlite would have applied it twice
        assert conn.execute("SELECT count(*) FROM w").fetchone() == (1,)
        conn.close()
    finally:
        proxy.close()


def test_a_lost_read_answer_is_resent(dqlite: DqliteDemoCluster) -> None:
    proxy = WireProxy(dqlite.addresses)
    try:
        conn = connect(proxy.addresses, database=database(), timeout=10)
        fault = proxy.lose_answer(lambda r: isinstance(r, codec.QuerySqlRequest), times=2)
        assert conn.execute("SELECT 40 + 2").fetchone() == (42,)
        assert fault.hits == 2
        conn.close()
    finally:
        proxy.close()
