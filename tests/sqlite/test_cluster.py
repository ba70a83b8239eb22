"""Several App members in one process (real NodeHosts over gRPC on loopback): static
bootstrap, roles, leader(), cluster(), handover(), consistency levels, identical replicas."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodehost.sqlite import App, OperationalError, Role
from tests.sqlite.support import free_addresses, wait_for

RTT = 20


def _start(root: Path, addresses: list[str], count: int, **options: object) -> list[App]:
    apps = []
    for address in addresses[:count]:
        apps.append(
            App(
                root / address.replace(":", "_"),
                address=address,
                cluster=addresses,
                rtt_millisecond=RTT,
                unreachable_timeout=1.0,
                **options,  # type: ignore[arg-type]
            )
        )
    return apps


@pytest.fixture
def three(tmp_path: Path) -> Iterator[list[App]]:
    addresses = free_addresses(3)
    apps = _start(tmp_path, addresses, 3)
    try:
        for app in apps:
            app.ready(30)
        yield apps
    finally:
        for app in apps:
            app.close()


def _same_state(apps: list[App]) -> bool:
    indexes = {app.applied_index() for app in apps}
    return len(indexes) == 1 and len({app.state_hash() for app in apps}) == 1


def test_writes_anywhere_are_read_everywhere_and_replicas_are_identical(three: list[App]) -> None:
    leader = wait_for(lambda: three[0].leader(), what="a leader")
    assert leader is not None and leader.role is Role.VOTER
    assert {node.address for node in three[0].cluster()} == {app.address for app in three}
    assert all(node.role is Role.VOTER for node in three[1].cluster())
    connections = [app.open("shared", isolation_level=None) for app in three]
    connections[0].execute(
        "CREATE TABLE kv (k TEXT PRIMARY KEY, v, at TEXT DEFAULT CURRENT_TIMESTAMP, r DEFAULT (random()))"
    )
    rng = random.Random(1)
    errors: list[BaseException] = []

    def client(number: int) -> None:
        connection = three[number % 3].open("shared")
        try:
            for i in range(30):
                key = f"k{rng.randrange(20)}"
                if i % 3 == 0:
                    with connection:
                        connection.execute(
                            "INSERT OR REPLACE INTO kv (k, v) VALUES (?, randomblob(8))", (key,)
                        )
                        connection.execute(
                            "UPDATE kv SET v = hex(v) || datetime('now') WHERE k = ?", (key,)
                        )
                else:
                    connection.execute("INSERT OR IGNORE INTO kv (k, v) VALUES (?, ?)", (key, i))
                    connection.commit()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    # Strong reads on every member see the same rows; the files become byte-identical.
    counts = {c.execute("SELECT count(*), sum(length(v)) FROM kv").fetchone() for c in connections}
    assert len(counts) == 1
    wait_for(lambda: _same_state(three), what="identical replicas")


def test_consistency_levels_on_a_follower(three: list[App]) -> None:
    leader = wait_for(lambda: three[0].leader(), what="a leader")
    follower = next(app for app in three if app.id != leader.id)
    writer = follower.open("levels", isolation_level=None)
    writer.execute("CREATE TABLE l (v)")
    writer.execute("INSERT INTO l VALUES (1)")
    reader = follower.open("levels", isolation_level=None)
    # Acknowledged before the read began: strong and weak must see it; none may lag.
    assert reader.cursor().execute("SELECT count(*) FROM l", consistency="strong").fetchone() == (
        1,
    )
    assert reader.cursor().execute("SELECT count(*) FROM l", consistency="weak").fetchone() == (1,)
    assert reader.cursor().execute("SELECT count(*) FROM l", consistency="none").fetchone() in (
        (0,),
        (1,),
    )


def test_handover_moves_leadership_and_the_vote(three: list[App]) -> None:
    leader = wait_for(lambda: three[0].leader(), what="a leader")
    old = next(app for app in three if app.id == leader.id)
    old.handover(timeout=20)
    others = [app for app in three if app is not old]
    new = wait_for(lambda: others[0].leader(), what="a new leader")
    assert new.id != old.id
    roles = {node.id: node.role for node in others[0].cluster()}
    assert roles[old.id] is Role.SPARE
    connection = others[1].open("after", isolation_level=None)
    connection.execute("CREATE TABLE a (v)")
    connection.execute("INSERT INTO a VALUES (1)")


def test_a_stand_by_replaces_a_voter_that_stays_unreachable(tmp_path: Path) -> None:
    addresses = free_addresses(4)
    apps = _start(tmp_path, addresses, 4, voters=3, standbys=1)
    try:
        # Static ids follow the sorted addresses: the last one is the stand-by.
        standby_address = sorted(addresses)[-1]
        standby = next(app for app in apps if app.address == standby_address)
        for app in apps:
            if app is not standby:
                app.ready(30)

        def standby_listed() -> bool:
            roles = {node.id: node.role for node in apps[0].cluster()}
            return roles.get(standby.id) is Role.STANDBY

        wait_for(standby_listed, timeout=60, what="the fourth member as a stand-by")
        leader = wait_for(lambda: standby.leader(), what="the stand-by following")
        victim = next(app for app in apps if app.id not in (leader.id, standby.id))
        victim.close()
        survivors = [app for app in apps if app is not victim]

        def promoted() -> bool:
            roles = {node.id: node.role for node in survivors[0].cluster()}
            return roles.get(standby.id) is Role.VOTER and roles.get(victim.id) is Role.SPARE

        wait_for(promoted, timeout=60, what="the stand-by promoted")
        connection = standby.open("promoted", isolation_level=None)
        connection.execute("CREATE TABLE p (v)")
        connection.execute("INSERT INTO p VALUES (1)")
        # The lost voter returns: removed while away, it joins again under a new id and
        # fills the empty stand-by place.
        back = App(
            victim.dir,
            address=victim.address,
            cluster=addresses,
            rtt_millisecond=RTT,
            unreachable_timeout=1.0,
            voters=3,
            standbys=1,
        )
        apps = [*survivors, back]

        def rejoined() -> bool:
            roles = {node.address: (node.id, node.role) for node in survivors[0].cluster()}
            new_id, role = roles.get(victim.address, (0, Role.SPARE))
            return new_id != victim.id and role is Role.STANDBY

        wait_for(rejoined, timeout=90, what="the lost voter rejoined as a stand-by")
        wait_for(
            lambda: (
                back.open("promoted", consistency="none")
                .execute("SELECT count(*) FROM p")
                .fetchone()
                == (1,)
            ),
            timeout=30,
            what="the rejoined member's copy",
        )
    finally:
        for app in apps:
            app.close()


def test_no_quorum_is_an_operational_error(tmp_path: Path) -> None:
    addresses = free_addresses(3)
    apps = _start(tmp_path, addresses, 3)
    try:
        for app in apps:
            app.ready(30)
        connection = apps[0].open("quorum", isolation_level=None, timeout=1.0)
        connection.execute("CREATE TABLE q (v)")
        apps[1].close()
        apps[2].close()
        with pytest.raises(OperationalError):
            connection.execute("INSERT INTO q VALUES (1)")
        with pytest.raises(OperationalError):
            connection.execute("SELECT count(*) FROM q")
        assert connection.cursor().execute(
            "SELECT count(*) FROM q", consistency="none"
        ).fetchone() == (0,)
    finally:
        for app in apps:
            app.close()
