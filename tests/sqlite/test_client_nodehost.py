"""nodehost's remote client (`nodehost.sqlite.connect`) against nodehost members: the
same answers as the embedded connection, the leader found and followed when it leaves,
and a write whose answer is lost applied exactly once (the server's sessions)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodehost.sqlite import App, IntegrityError, NotSupportedError, ProgrammingError, connect
from nodehost.sqlite.wire import codec
from tests.sqlite.support import free_addresses, wait_for
from tests.sqlite.wireproxy import WireProxy


@pytest.fixture
def apps(tmp_path: Path) -> Iterator[list[App]]:
    addresses = free_addresses(3)
    started = [
        App(tmp_path / f"m{n}", address=a, cluster=addresses, rtt_millisecond=20)
        for n, a in enumerate(addresses)
    ]
    try:
        for app in started:
            app.ready(30)
        yield started
    finally:
        for app in started:
            app.close()


def _name() -> str:
    return f"db-{uuid.uuid4().hex[:8]}"


def test_remote_answers_as_embedded(apps: list[App]) -> None:
    name = _name()
    remote = connect(",".join(app.address for app in apps), database=name, timeout=10)
    remote.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)")
    with remote:
        cursor = remote.execute("INSERT INTO t (v) VALUES (?)", ("a",))
        assert cursor.lastrowid == 1 and cursor.rowcount == 1
        assert remote.execute("SELECT count(*) FROM t").fetchone() == (1,)  # own write
    with pytest.raises(IntegrityError, match="UNIQUE"), remote:
        remote.execute("INSERT INTO t (v) VALUES ('a')")
    with pytest.raises(ProgrammingError, match="syntax error"):
        remote.execute("SELEC 1")
    with pytest.raises(NotSupportedError):
        remote.execute("ATTACH 'x' AS y")
    local = apps[1].open(name)
    assert (
        local.execute("SELECT v FROM t").fetchall() == remote.execute("SELECT v FROM t").fetchall()
    )
    remote.close()


def test_remote_follows_the_leader_and_a_lost_answer_is_applied_once(apps: list[App]) -> None:
    name = _name()
    proxy = WireProxy([app.address for app in apps])
    try:
        conn = connect(proxy.addresses, database=name, timeout=15, isolation_level=None)
        conn.execute("CREATE TABLE w (v)")
        fault = proxy.lose_answer(
            lambda r: isinstance(r, codec.ExecSqlRequest | codec.ExecRequest) and "INSERT" in str(r)
        )
        conn.execute("INSERT INTO w VALUES (1)")  # answered once, through the retry
        assert fault.hits == 1
        assert conn.execute("SELECT count(*) FROM w").fetchone() == (1,)
        # The leader leaves: the client finds the next one within its timeout.
        leader = wait_for(lambda: apps[0].leader(), what="a leader")
        departing = next(app for app in apps if app.id == leader.id)
        departing.close()
        conn.execute("INSERT INTO w VALUES (2)")
        assert conn.execute("SELECT sum(v) FROM w").fetchone() == (3,)
        conn.close()
    finally:
        proxy.close()
