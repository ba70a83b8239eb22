"""Member status (a pure function of heartbeat times and schema versions) and the
heartbeat's record of roles and times, on a stdlib sqlite3 cursor."""

from __future__ import annotations

import datetime
import sqlite3

from nodehost.cluster.heartbeat import StrayTracker, record
from nodehost.cluster.members import (
    Member,
    Role,
    Status,
    insert_member,
    now_text,
    read_members,
    statuses,
)
from nodehost.cluster.schema import Schema, Versions
from nodehost.cluster.tokenrecords import PURGE_AFTER
from nodehost.sqlite import NodeInfo
from nodehost.sqlite import Role as DatabaseRole

T0 = datetime.datetime(2030, 1, 1, 12, 0, tzinfo=datetime.UTC)
CURRENT = Versions(1, 0)


def member(
    name: str, seen: datetime.datetime, versions: Versions = CURRENT, role: Role = Role.VOTER
) -> Member:
    port = 9000 + int(name[-1])
    return Member(
        name,
        f"127.0.0.1:{port}",
        f"c{name}",
        f"f{name}",
        str(role),
        versions.internal,
        versions.external,
        now_text(seen),
    )


def test_a_member_is_offline_after_three_missed_heartbeats() -> None:
    members = [
        member("m1", T0),
        member("m2", T0),
        member("m3", T0 - datetime.timedelta(seconds=3.5)),
    ]
    seen = statuses(
        members, local="m1", now=T0 + datetime.timedelta(seconds=0.5), heartbeat_interval=1.0
    )
    assert seen == {"m1": Status.ONLINE, "m2": Status.ONLINE, "m3": Status.OFFLINE}


def test_the_lister_is_online_whatever_its_heartbeat() -> None:
    old = T0 - datetime.timedelta(hours=1)
    seen = statuses(
        [member("m1", old), member("m2", old)], local="m1", now=T0, heartbeat_interval=1.0
    )
    assert seen == {"m1": Status.ONLINE, "m2": Status.OFFLINE}


def test_during_an_upgrade_members_are_upgrading_or_need_one() -> None:
    new, old = Versions(1, 2), Versions(1, 1)
    members = [
        member("m1", T0, new),
        member("m2", T0, old),
        member("m3", T0 - datetime.timedelta(seconds=10), old),
    ]
    seen = statuses(members, local="m2", now=T0, heartbeat_interval=1.0)
    assert seen == {"m1": Status.UPGRADING, "m2": Status.NEEDS_UPGRADE, "m3": Status.OFFLINE}


def test_a_pending_member_does_not_start_an_upgrade() -> None:
    members = [member("m1", T0), member("m2", T0, Versions(1, 5), Role.PENDING)]
    seen = statuses(members, local="m1", now=T0, heartbeat_interval=1.0)
    assert seen == {"m1": Status.ONLINE, "m2": Status.ONLINE}


def test_a_heartbeat_records_times_for_those_who_answered_and_roles_from_the_database() -> None:
    cursor = sqlite3.connect(":memory:", isolation_level=None).cursor()
    Schema().apply(cursor, Versions(0, 0), now_text(T0))
    before = T0 - datetime.timedelta(minutes=1)
    for row in (
        member("m1", before),
        member("m2", before),
        member("m3", before, role=Role.PENDING),
    ):
        insert_member(cursor, row)
    cursor.execute(
        "INSERT INTO core_token_records (name, secret, expiry_date) VALUES "
        "('old', 's1', ?), ('recent', 's2', ?), ('new', 's3', ?), ('ever', 's4', NULL)",
        (
            now_text(T0 - PURGE_AFTER - datetime.timedelta(seconds=1)),
            now_text(T0 - datetime.timedelta(seconds=1)),
            now_text(T0 + datetime.timedelta(hours=1)),
        ),
    )
    now = now_text(T0)
    roles = {"127.0.0.1:10001": Role.VOTER, "127.0.0.1:10002": Role.STANDBY}
    changes = record(cursor, {"m1", "m3"}, roles, now)
    rows = {m.name: m for m in read_members(cursor)}
    assert rows["m1"].heartbeat == now and rows["m2"].heartbeat == now_text(before)
    assert rows["m2"].role == "stand-by"
    assert rows["m3"].role == "PENDING" and rows["m3"].heartbeat == now
    assert changes["m2"].changed and not changes["m1"].changed
    cursor.execute("SELECT name FROM core_token_records ORDER BY name")
    # long expired: purged; just expired: kept, so presenting it still says "expired"
    assert [r[0] for r in cursor.fetchall()] == ["ever", "new", "recent"]


def test_a_stray_is_removed_only_after_several_rounds_in_a_row() -> None:
    tracker = StrayTracker(rounds=3)
    stray = NodeInfo(7, "127.0.0.1:10009", DatabaseRole.SPARE)
    assert tracker.update([stray]) == []
    assert tracker.update([stray]) == []
    assert tracker.update([]) == []  # it got its row: the count starts over
    assert tracker.update([stray]) == [] and tracker.update([stray]) == []
    assert tracker.update([stray]) == [stray]
