"""The remote client (`nodehost.sqlite.connect`) against real clusters in separate
processes: three nodehost members (what CI runs), and the same tests against the real
dqlite (dqlite-demo) where it is installed. Leader discovery, PEP 249 behaviour over the
wire, streaming, transactions, failover with SIGKILL, and resending after lost answers.
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
from tests.sqlite.wire_clusters import KINDS, NodehostCluster, WireCluster, start
from tests.sqlite.wireproxy import WireProxy

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=KINDS)
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WireCluster]:
    started = start(request.param, tmp_path_factory.mktemp(request.param))
    yield started
    started.stop_all()


@pytest.fixture(params=KINDS)
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[WireCluster]:
    """A cluster of its own, for tests that kill members."""
    started = start(request.param, tmp_path)
    yield started
    started.stop_all()


@pytest.fixture
def nodehost(tmp_path: Path) -> Iterator[NodehostCluster]:
    started = NodehostCluster(tmp_path)
    yield started
    started.stop_all()


def database() -> str:
    return f"db_{uuid.uuid4().hex[:8]}"


# -- finding the leader, statements, results ------------------------------------------------


def test_the_client_finds_the_leader_from_a_follower_address(cluster: WireCluster) -> None:
    leader = cluster.leader()
    follower = next(a for a in cluster.addresses if a != leader)
    with connect(follower, database=database(), timeout=10) as conn:
        assert conn.leader_address == leader
        info = conn.leader()
        assert info is not None and info.address == leader
        members = conn.cluster()
    assert sorted(m.address for m in members) == sorted(cluster.addresses)
    assert {m.role for m in members} == {Role.VOTER}


def test_statements_parameters_and_types(cluster: WireCluster) -> None:
    conn = connect(",".join(cluster.addresses), database=database(), timeout=10)
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
    names = [entry[0] for entry in cursor.description or ()]
    assert names == ["name", "score", "data", "born", "stamp", "ok"]
    # As sqlite3 returns them: dates as stored, booleans as integers, NULL as None; but
    # dqlite's server sends a NULL in a BOOLEAN column as false.
    null_boolean = 0 if cluster.kind == "dqlite" else None
    assert cursor.fetchall() == [
        ("ann", 1.5, b"\x00\x01", "2024-05-06 07:08:09", 1700000000, 1),
        ("bob", None, None, None, None, null_boolean),
        ("cy", None, None, "2000-01-01", None, null_boolean),
    ]
    assert conn.execute("SELECT count(*) FROM t WHERE name = ?3", (0, 0, "bob")).fetchone() == (1,)
    empty = conn.execute("SELECT id, name FROM t WHERE id < 0")  # no rows, still described
    assert [entry[0] for entry in empty.description or ()] == ["id", "name"]
    assert empty.fetchall() == []
    assert conn.execute("UPDATE t SET score = 2 WHERE score IS NULL").rowcount == 2
    conn.rollback()
    assert conn.execute("SELECT count(*) FROM t WHERE score = 2").fetchone() == (0,)
    conn.close()


def test_errors_are_pep_249_exceptions_with_sqlite_codes(cluster: WireCluster) -> None:
    conn = connect(cluster.addresses, database=database(), timeout=10, isolation_level=None)
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
    with pytest.raises(client.ProgrammingError, match="null character"):
        conn.execute("SELECT 1\x00")
    assert conn.execute("SELECT count(*) FROM u").fetchone() == (1,)  # nothing was lost
    conn.close()
    with pytest.raises(client.ProgrammingError, match="closed database"):
        conn.execute("SELECT 1")


def test_a_long_result_streams_and_survives_another_request(cluster: WireCluster) -> None:
    conn = connect(cluster.addresses, database=database(), timeout=10, isolation_level=None)
    conn.execute("CREATE TABLE n (v INTEGER, pad TEXT)")
    conn.execute(
        "INSERT INTO n WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
        "WHERE x < 5000) SELECT x, printf('%040d', x) FROM c"
    )
    first = conn.execute("SELECT v FROM n ORDER BY v")  # several ROWS batches
    assert first.fetchone() == (1,)
    second = conn.execute("SELECT count(*) FROM n")  # needs the link: reads the rest first
    assert second.fetchone() == (5000,)
    assert [row[0] for row in first.fetchall()] == list(range(2, 5001))

    third = conn.execute("SELECT v, pad FROM n ORDER BY v")
    assert [row[0] for row in third.fetchmany(3)] == [1, 2, 3]
    third.close()  # interrupts the query
    assert conn.execute("SELECT max(v) FROM n").fetchone() == (5000,)
    assert [row[0] for row in conn.execute("SELECT v FROM n WHERE v > 4998")] == [4999, 5000]
    conn.close()


def test_transactions_and_savepoints(cluster: WireCluster) -> None:
    conn = connect(cluster.addresses, database=database(), timeout=10, isolation_level=None)
    conn.execute("CREATE TABLE s (v INTEGER)")
    with conn:  # autocommit mode: nothing to commit, nothing rolled back
        conn.execute("INSERT INTO s VALUES (1)")
    conn.execute("BEGIN")
    assert conn.in_transaction
    conn.execute("INSERT INTO s VALUES (2)")
    conn.execute("SAVEPOINT inner_one")
    conn.execute("INSERT INTO s VALUES (3)")
    conn.execute("ROLLBACK TO inner_one")
    conn.execute("RELEASE inner_one")
    assert conn.in_transaction
    assert conn.execute("SELECT sum(v) FROM s").fetchone() == (3,)  # its own writes
    conn.execute("COMMIT")
    assert not conn.in_transaction
    conn.execute("SAVEPOINT outer_one")  # outside a transaction: opens one
    assert conn.in_transaction
    conn.execute("INSERT INTO s VALUES (10)")
    conn.execute("RELEASE outer_one")  # and its release commits it
    assert not conn.in_transaction
    conn.isolation_level = ""
    with pytest.raises(client.IntegrityError), conn:
        conn.execute("INSERT INTO s VALUES (100)")
        raise client.IntegrityError("rolled back by the with block")
    assert conn.execute("SELECT sum(v) FROM s").fetchone() == (13,)
    conn.execute("INSERT INTO s VALUES (5)")
    assert conn.in_transaction  # isolation_level "": an implicit transaction
    conn.executescript("INSERT INTO s VALUES (20); INSERT INTO s VALUES (30);")
    assert not conn.in_transaction  # committed first; the script's writes are autocommit
    assert conn.execute("SELECT sum(v) FROM s").fetchone() == (68,)
    conn.close()


def test_admin_calls(cluster: WireCluster) -> None:
    with ClusterClient(cluster.addresses[-1], timeout=10) as admin:
        leader = admin.leader()
        assert leader is not None and leader.address == cluster.leader()
        assert sorted(m.address for m in admin.cluster()) == sorted(cluster.addresses)
        assert admin.describe(cluster.addresses[0]) == (0, 0)
        admin.weight(cluster.addresses[0], 0)
        name = database()
        with connect(cluster.addresses, database=name, isolation_level=None) as conn:
            conn.execute("CREATE TABLE d (x)")
            conn.execute("INSERT INTO d VALUES ('dumped')")
        files = admin.dump(name)
        assert [f.name for f in files] == [name, f"{name}-wal"]
        assert files[0].data.startswith(b"SQLite format 3\x00")


def test_a_lost_read_answer_is_resent(cluster: WireCluster) -> None:
    proxy = WireProxy(cluster.addresses)
    try:
        conn = connect(proxy.addresses, database=database(), timeout=10)
        fault = proxy.lose_answer(lambda r: isinstance(r, codec.QuerySqlRequest), times=2)
        assert conn.execute("SELECT 40 + 2").fetchone() == (42,)
        assert fault.hits == 2
        conn.close()
    finally:
        proxy.close()


def test_leadership_transfer_through_the_admin_client(cluster: WireCluster) -> None:
    with ClusterClient(cluster.addresses, timeout=15) as admin:
        leader = admin.leader()
        assert leader is not None
        target = next(m for m in admin.cluster() if m.id != leader.id)
        admin.transfer(target.id)
        now = admin.leader()
        assert now is not None and now.id == target.id


def test_a_write_and_a_commit_whose_answers_are_lost_are_applied_once(
    cluster: WireCluster,
) -> None:
    if cluster.kind != "nodehost":
        pytest.skip("dqlite has no sessions: test_client_dqlite.py checks what happens there")
    proxy = WireProxy(cluster.addresses)
    try:
        conn = connect(proxy.addresses, database=database(), timeout=15, isolation_level=None)
        conn.execute("CREATE TABLE once (v INTEGER)")
        inserts = proxy.lose_answer(
            lambda r: isinstance(r, codec.ExecSqlRequest) and r.sql.startswith("INSERT")
        )
        conn.execute("INSERT INTO once VALUES (1)")  # resent with its sequence: applied once
        assert inserts.hits == 1
        assert conn.execute("SELECT count(*) FROM once").fetchone() == (1,)

        commits = proxy.lose_answer(
            lambda r: isinstance(r, codec.ExecSqlRequest) and r.sql == "COMMIT"
        )
        conn.execute("BEGIN")
        conn.execute("INSERT INTO once VALUES (2)")
        conn.execute("INSERT INTO once VALUES (3)")
        conn.commit()  # its answer is lost; the resent COMMIT finds it applied
        assert commits.hits == 1
        assert not conn.in_transaction
        assert conn.execute("SELECT v FROM once ORDER BY v").fetchall() == [(1,), (2,), (3,)]
        conn.close()
    finally:
        proxy.close()


# -- failover --------------------------------------------------------------------------------


def test_failover_writes_resume_through_the_new_leader(fresh: WireCluster) -> None:
    conn = connect(fresh.addresses, database=database(), timeout=20, isolation_level=None)
    conn.execute("CREATE TABLE f (v INTEGER)")
    conn.execute("INSERT INTO f VALUES (1)")
    old = fresh.leader()
    fresh.kill(old)  # SIGKILL
    conn.execute("INSERT INTO f VALUES (2)")  # finds the new leader within the timeout
    assert conn.leader_address not in ("", old)
    assert conn.execute("SELECT v FROM f ORDER BY v").fetchall() == [(1,), (2,)]
    conn.close()


def test_a_transaction_whose_leader_dies_is_reported_rolled_back(fresh: WireCluster) -> None:
    conn = connect(fresh.addresses, database=database(), timeout=20)
    conn.execute("CREATE TABLE g (v INTEGER)")
    conn.commit()
    conn.execute("INSERT INTO g VALUES (1)")
    assert conn.in_transaction
    fresh.kill(fresh.leader())
    with pytest.raises(client.OperationalError, match="transaction was rolled back"):
        conn.execute("INSERT INTO g VALUES (2)")
    with pytest.raises(client.OperationalError, match="nothing was committed"):
        conn.commit()
    assert not conn.in_transaction
    assert conn.execute("SELECT count(*) FROM g").fetchone() == (0,)
    conn.execute("INSERT INTO g VALUES (3)")  # the connection goes on with a new transaction
    conn.commit()
    assert conn.execute("SELECT v FROM g").fetchall() == [(3,)]
    conn.close()


# -- consistency none ----------------------------------------------------------------------------


def test_reads_at_consistency_none_survive_the_loss_of_quorum(nodehost: NodehostCluster) -> None:
    name = database()
    with connect(nodehost.addresses, database=name, isolation_level=None) as writer:
        writer.execute("CREATE TABLE q (v TEXT)")
        writer.execute("INSERT INTO q VALUES ('kept')")
    leader = nodehost.leader()
    survivor = next(a for a in nodehost.addresses if a != leader)
    # Let the survivor apply the write (a NONE read would otherwise be allowed to lag).
    with connect(survivor, database=name, consistency="strong") as strong:
        assert strong.execute("SELECT v FROM q").fetchall() == [("kept",)]
    for address in nodehost.addresses:
        if address != survivor:
            nodehost.kill(address)
    relaxed = connect(survivor, database=name, consistency="none", timeout=3)
    assert relaxed.execute("SELECT v FROM q").fetchall() == [("kept",)]  # from its copy
    with pytest.raises(client.OperationalError):
        relaxed.execute("SELECT v FROM q", consistency="strong")  # no quorum: no leader
    with pytest.raises(client.OperationalError):
        relaxed.execute("INSERT INTO q VALUES ('lost')")
    relaxed.close()
