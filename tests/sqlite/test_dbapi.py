"""PEP 249 conformance of the embedded connection (a one-member App: real NodeHost,
real RocksDB and SQLite files), and bad input answered with the right exception."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from nodehost.sqlite import (
    DatabaseError,
    DataError,
    Error,
    IntegrityError,
    InterfaceError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    dbapi,
)
from nodehost.sqlite.app import App, default_raft_address
from tests.sqlite.support import free_addresses


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    address = free_addresses(1)[0]
    member = App(tmp_path_factory.mktemp("dbapi"), address=address, rtt_millisecond=20)
    try:
        member.ready(30)
        yield member
    finally:
        member.close()


@pytest.fixture
def conn(app: App, request: pytest.FixtureRequest) -> Iterator[dbapi.Connection]:
    connection = app.open(f"db_{request.node.name[:60]}")
    connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE, n REAL)")
    yield connection
    connection.close()


def test_module_globals_and_exception_hierarchy() -> None:
    assert (dbapi.apilevel, dbapi.threadsafety, dbapi.paramstyle) == ("2.0", 1, "qmark")
    assert issubclass(IntegrityError, DatabaseError) and issubclass(DatabaseError, Error)
    assert issubclass(InterfaceError, Error) and issubclass(ProgrammingError, DatabaseError)


def test_qmark_and_named_parameters_and_fetches(conn: dbapi.Connection) -> None:
    cur = conn.cursor()
    cur.execute("INSERT INTO t (name, n) VALUES (?, ?)", ("a", 1.5))
    assert cur.rowcount == 1 and cur.lastrowid == 1
    cur.execute("INSERT INTO t (name, n) VALUES (:name, :n)", {"name": "b", "n": 2})
    cur.executemany("INSERT INTO t (name, n) VALUES (?, ?)", [("c", 3), ("d", 4), ("e", None)])
    assert cur.rowcount == 3
    conn.commit()
    cur.execute("SELECT id, name, n FROM t ORDER BY id")
    assert cur.description is not None
    assert [d[0] for d in cur.description] == ["id", "name", "n"]
    assert cur.fetchone() == (1, "a", 1.5)
    assert cur.fetchmany(2) == [(2, "b", 2.0), (3, "c", 3.0)]
    cur.arraysize = 5
    assert cur.fetchmany() == [(4, "d", 4.0), (5, "e", None)]
    assert cur.fetchone() is None and cur.fetchall() == []
    assert list(conn.execute("SELECT name FROM t WHERE n > ?", (2.5,))) == [("c",), ("d",)]
    assert conn.execute("SELECT ?, ?, ?", (None, b"\x00\xff", 2**62)).fetchall() == [
        (None, b"\x00\xff", 2**62)
    ]


def test_with_block_commits_or_rolls_back_as_a_whole(conn: dbapi.Connection) -> None:
    with conn:
        conn.execute("INSERT INTO t (name) VALUES ('x')")
        conn.execute("INSERT INTO t (name) VALUES ('y')")
        # Reads inside the transaction see its own writes.
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (2,)
    with pytest.raises(IntegrityError, match=r"UNIQUE constraint failed: t\.name"), conn:
        conn.execute("INSERT INTO t (name) VALUES ('z')")
        conn.execute("INSERT INTO t (name) VALUES ('x')")
    assert not conn.in_transaction
    assert conn.execute("SELECT name FROM t ORDER BY name").fetchall() == [("x",), ("y",)]


def test_explicit_begin_commit_and_savepoints_in_autocommit_mode(app: App) -> None:
    conn = app.open("explicit", isolation_level=None)
    conn.execute("CREATE TABLE IF NOT EXISTS s (v)")
    conn.execute("BEGIN")
    conn.execute("INSERT INTO s VALUES (1)")
    conn.execute("SAVEPOINT a")
    conn.execute("INSERT INTO s VALUES (2)")
    conn.execute("ROLLBACK TO a")
    conn.execute("INSERT INTO s VALUES (3)")
    assert conn.execute("SELECT v FROM s ORDER BY v").fetchall() == [(1,), (3,)]
    other = app.open("explicit")
    assert other.execute("SELECT count(*) FROM s").fetchone() == (0,)  # not committed yet
    conn.execute("COMMIT")
    assert other.execute("SELECT v FROM s ORDER BY v").fetchall() == [(1,), (3,)]
    conn.execute("BEGIN")
    conn.execute("DELETE FROM s")
    conn.execute("ROLLBACK")
    assert other.execute("SELECT count(*) FROM s").fetchone() == (2,)
    with pytest.raises(OperationalError, match="no transaction is active"):
        conn.execute("COMMIT")


def test_a_transaction_that_saw_changed_data_is_refused_whole(app: App) -> None:
    first, second = app.open("conflict"), app.open("conflict")
    first.execute("CREATE TABLE IF NOT EXISTS c (k PRIMARY KEY, v)")
    first.execute("INSERT INTO c VALUES ('k', 1)")
    first.commit()
    first.execute("UPDATE c SET v = v + 1 WHERE k = 'k'")
    assert first.execute("SELECT v FROM c").fetchone() == (2,)
    second.execute("UPDATE c SET v = 10 WHERE k = 'k'")
    second.commit()
    with pytest.raises(OperationalError, match="changed before it committed"):
        first.commit()
    assert first.execute("SELECT v FROM c").fetchone() == (10,)


def test_blind_writes_from_many_transactions_never_conflict(app: App) -> None:
    connections = [app.open("blind") for _ in range(5)]
    connections[0].execute("CREATE TABLE IF NOT EXISTS b (id INTEGER PRIMARY KEY, v)")
    for number, connection in enumerate(connections):
        connection.execute("INSERT INTO b (v) VALUES (?)", (number,))
    for connection in connections:
        connection.commit()
    assert connections[0].execute("SELECT count(*) FROM b").fetchone() == (5,)


def test_bad_input_gets_the_right_exception_and_loses_nothing(conn: dbapi.Connection) -> None:
    conn.execute("INSERT INTO t (name) VALUES ('kept')")
    conn.commit()
    with pytest.raises(ProgrammingError, match="syntax error"):
        conn.execute("SELEC * FROM t")
    with pytest.raises(ProgrammingError, match="no such table"):
        conn.execute("SELECT * FROM missing")
    with pytest.raises(ProgrammingError, match="one statement at a time"):
        conn.execute("SELECT 1; SELECT 2")
    with pytest.raises(ProgrammingError, match="Incorrect number of bindings"):
        conn.execute("SELECT ?", (1, 2))
    with pytest.raises(InterfaceError, match="not supported"):
        conn.execute("SELECT ?", (object(),))
    with pytest.raises(DataError):
        conn.execute("SELECT ?", (2**64,))
    with pytest.raises(NotSupportedError, match="ATTACH"):
        conn.execute("ATTACH 'elsewhere.db' AS e")
    with pytest.raises(NotSupportedError, match="temporary"):
        conn.execute("CREATE TEMP TABLE x (a)")
    with pytest.raises(NotSupportedError, match="cannot be set"):
        conn.execute("PRAGMA foreign_keys = OFF")
    with pytest.raises(NotSupportedError, match="belongs to nodehost"):
        conn.execute("DELETE FROM _nodehost_applied")
    big = "x" * (9 * 1024 * 1024)
    with pytest.raises(DataError, match="too large"):
        conn.execute("INSERT INTO t (name) VALUES (?)", (big,))
        conn.commit()  # the transaction is replicated, and refused, here
    assert not conn.in_transaction
    assert conn.execute("SELECT name FROM t").fetchall() == [("kept",)]
    cursor = conn.cursor()
    conn.close()
    with pytest.raises(ProgrammingError, match="closed database"):
        conn.execute("SELECT 1")
    with pytest.raises(ProgrammingError, match="closed database"):
        cursor.execute("SELECT 1")


def test_consistency_levels_and_a_bad_one(app: App) -> None:
    conn = app.open("levels", consistency="none", isolation_level=None)
    conn.execute("CREATE TABLE IF NOT EXISTS l (v)")
    conn.execute("INSERT INTO l VALUES (1)")
    for level in ("strong", "weak", "none"):
        assert conn.cursor().execute("SELECT count(*) FROM l", consistency=level).fetchone() == (1,)
    conn.consistency = "weak"
    assert conn.consistency == "weak"
    with pytest.raises(ProgrammingError, match="unknown consistency"):
        app.open("levels", consistency="eventual")
    with pytest.raises(ProgrammingError, match="bad database name"):
        app.open("")


def test_executescript_and_raft_address_default(app: App, tmp_path: Path) -> None:
    conn = app.open("script")
    conn.executescript(
        """
        CREATE TABLE IF NOT EXISTS a (v);
        CREATE TRIGGER IF NOT EXISTS a_double AFTER INSERT ON a BEGIN
            INSERT INTO a2 VALUES (new.v * 2);
        END;
        CREATE TABLE IF NOT EXISTS a2 (v);
        BEGIN; INSERT INTO a VALUES (1); INSERT INTO a VALUES (2); COMMIT;
        """
    )
    assert conn.execute("SELECT sum(v) FROM a2").fetchone() == (6,)
    assert default_raft_address("127.0.0.1:9001") == "127.0.0.1:10001"


def test_concurrent_writers_share_raft_entries_and_none_fails(app: App) -> None:
    import threading

    setup = app.open("group", isolation_level=None)
    setup.execute("CREATE TABLE IF NOT EXISTS g (id INTEGER PRIMARY KEY, who INTEGER)")
    entries, writes = app.batcher.entries, app.batcher.writes
    failures: list[BaseException] = []
    start = threading.Barrier(32)

    def writer(number: int) -> None:
        connection = app.open("group")  # PEP 249 mode: each INSERT is a transaction
        start.wait()
        try:
            for _ in range(10):
                connection.execute("INSERT INTO g (who) VALUES (?)", (number,))
                connection.commit()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures, failures[:3]
    assert setup.execute("SELECT count(*) FROM g").fetchone() == (320,)
    made, carried = app.batcher.entries - entries, app.batcher.writes - writes
    assert carried == 320 and made < carried, (made, carried)
