"""Schema updates: ordered, recorded, applied once, and the rolling-upgrade decisions.

The table logic runs on a stdlib sqlite3 cursor (PEP 249, as the replicated one); the
cluster-wide behaviour is in test_upgrade.py with real daemons."""

from __future__ import annotations

import sqlite3

import pytest

from nodehost.cluster.members import Member, Role, insert_member, now_text
from nodehost.cluster.schema import (
    CORE_UPDATES,
    Decision,
    Schema,
    SchemaError,
    Verdict,
    Versions,
    decide,
)


def cursor() -> sqlite3.Cursor:
    return sqlite3.connect(":memory:", isolation_level=None).cursor()


def member(name: str, versions: Versions, role: Role = Role.VOTER) -> Member:
    return Member(
        name,
        f"10.0.0.{sum(map(ord, name)) % 250}:9001",
        f"cert-{name}",
        f"fp-{name}",
        str(role),
        versions.internal,
        versions.external,
        now_text(),
    )


NEW, OLD = Versions(1, 2), Versions(1, 1)


@pytest.mark.parametrize(
    ("ours", "applied", "members", "verdict"),
    [
        (NEW, NEW, {"b": NEW}, Verdict.CURRENT),
        (NEW, OLD, {"b": NEW, "c": NEW}, Verdict.APPLY),
        (NEW, OLD, {"b": NEW, "c": OLD}, Verdict.WAIT),
        (OLD, NEW, {"b": NEW}, Verdict.BEHIND),  # the cluster moved on
        (OLD, OLD, {"b": NEW}, Verdict.BEHIND),  # another member runs newer code
        (NEW, OLD, {}, Verdict.APPLY),  # alone
        (Versions(2, 1), Versions(1, 2), {}, Verdict.BEHIND),  # newer core, older user code
    ],
)
def test_decisions(
    ours: Versions, applied: Versions, members: dict[str, Versions], verdict: Verdict
) -> None:
    assert decide(ours, applied, members).verdict is verdict


def test_waiting_names_the_members_not_upgraded() -> None:
    decision = decide(NEW, OLD, {"b": NEW, "c": OLD, "d": OLD})
    assert decision == Decision(Verdict.WAIT, decision.detail, ("c", "d"))
    assert "2 other member(s)" in decision.detail and "c, d" in decision.detail


def test_a_fresh_database_gets_every_update_in_order() -> None:
    applied_order: list[int] = []

    def second(c: sqlite3.Cursor) -> None:
        applied_order.append(2)
        c.execute("CREATE TABLE two (x)")

    schema = Schema(["CREATE TABLE one (x); CREATE INDEX one_x ON one (x);", second])
    c = cursor()
    assert schema.applied(c) == Versions(0, 0)
    schema.apply(c, Versions(0, 0), now_text())
    assert schema.applied(c) == Versions(len(CORE_UPDATES), 2)
    c.execute("SELECT version, type FROM schemas ORDER BY id")
    assert c.fetchall() == [(1, 0), (1, 1), (2, 1)]
    c.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'index') ORDER BY name")
    names = {row[0] for row in c.fetchall()}
    assert {"core_cluster_members", "core_token_records", "schemas", "one", "one_x", "two"} <= names
    assert applied_order == [2]


def test_ensure_applies_when_every_member_is_ready_and_only_once() -> None:
    c = cursor()
    old, new = (
        Schema(["CREATE TABLE one (x)"]),
        Schema(["CREATE TABLE one (x)", "CREATE TABLE two (x)"]),
    )
    old.apply(c, Versions(0, 0), now_text())
    for name in ("a", "b"):
        insert_member(c, member(name, old.versions))
    assert new.ensure(c, "a", now_text()).verdict is Verdict.WAIT  # b still runs old code
    assert new.applied(c) == old.versions
    assert new.ensure(c, "b", now_text()).verdict is Verdict.APPLY
    assert new.applied(c) == new.versions
    assert new.ensure(c, "a", now_text()).verdict is Verdict.CURRENT
    c.execute("SELECT count(*) FROM schemas WHERE type = 1")
    assert c.fetchone()[0] == 2


def test_pending_members_do_not_hold_an_upgrade_back() -> None:
    c = cursor()
    old, new = Schema([]), Schema(["CREATE TABLE one (x)"])
    old.apply(c, Versions(0, 0), now_text())
    insert_member(c, member("a", old.versions))
    insert_member(c, member("joining", old.versions, Role.PENDING))
    assert new.ensure(c, "a", now_text()).verdict is Verdict.APPLY


def test_old_code_on_a_newer_cluster_is_behind() -> None:
    c = cursor()
    new, old = Schema(["CREATE TABLE one (x)"]), Schema([])
    new.apply(c, Versions(0, 0), now_text())
    insert_member(c, member("a", new.versions))
    decision = old.ensure(c, "a", now_text())
    assert decision.verdict is Verdict.BEHIND
    assert "upgrade this member" in decision.detail


def test_a_failing_update_names_itself() -> None:
    schema = Schema(["CREATE TABLE one (x)", "CREATE TABLE one (x)"])
    with pytest.raises(SchemaError, match="user schema update 2 failed"):
        schema.apply(cursor(), Versions(0, 0), now_text())


def test_updates_must_be_sql_or_functions() -> None:
    with pytest.raises(TypeError, match="schema update 2"):
        Schema(["CREATE TABLE one (x)", 42])  # type: ignore[list-item]
