"""A schema update rolled out member by member: old and new code side by side.

Three members run code with two user updates. mc1, then mc2 restart with code that has
a third: each waits (its API answers "waiting"), the old members go on serving, and
`cluster list` shows who is UPGRADING and who NEEDS UPGRADE. When mc3 restarts with the
new code too, the update is applied once, and all three are ready. Old code started
after that is refused until upgraded."""

from __future__ import annotations

import pytest

from nodehost.cluster import Unavailable
from tests.cluster.conftest import Daemons
from tests.cluster.forming import Node, form, statuses
from tests.cluster.processes import wait_for


def restart(node: Node, daemons: Daemons, updates: int) -> None:
    node.process.stop()
    node.process = daemons.program(node.name, "--updates", str(updates))
    node.process.wait_answering()


def database(node: Node) -> str:
    return str(node.client.status()["database"])


def tables(node: Node) -> set[str]:
    answer = node.client.sql("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {row[0] for row in answer["results"][0]["rows"]}


@pytest.mark.timeout(900)
def test_a_rolling_schema_upgrade(daemons: Daemons) -> None:
    mc1, mc2, mc3 = form(3, lambda name: daemons.program(name, "--updates", "2"))
    assert mc1.client.request("POST", "/1.0/rows", {"value": "before"}) == 1
    assert "t2" in tables(mc1) and "t3" not in tables(mc1)

    restart(mc1, daemons, 3)
    wait_for(lambda: database(mc1) == "waiting", 60.0, "mc1 to wait for the others")
    assert "2 other member(s)" in str(mc1.client.status()["detail"])
    with pytest.raises(Unavailable, match="waiting for 2 other member"):
        mc1.client.request("POST", "/1.0/rows", {"value": "refused"})
    # the old code goes on serving the old schema
    assert mc2.client.request("POST", "/1.0/rows", {"value": "during"}) == 2
    wait_for(
        lambda: (
            [s for _, s in statuses(mc2).values()]
            == ["UPGRADING", "NEEDS UPGRADE", "NEEDS UPGRADE"]
        ),
        30.0,
        "mc2 to list mc1 upgrading and the others needing an upgrade",
    )
    assert "t3" not in tables(mc2)

    restart(mc2, daemons, 3)
    wait_for(lambda: database(mc2) == "waiting", 60.0, "mc2 to wait for mc3")
    assert "1 other member(s)" in str(mc2.client.status()["detail"])
    assert mc3.client.request("POST", "/1.0/rows", {"value": "still"}) == 3

    restart(mc3, daemons, 3)
    for node in (mc1, mc2, mc3):
        wait_for(lambda n=node: database(n) == "ready", 60.0, f"{node.name} ready")  # type: ignore[misc]
    assert {"t1", "t2", "t3"} <= tables(mc1)
    applied = mc2.client.sql("SELECT version FROM schemas WHERE type = 1 ORDER BY version")
    assert applied["results"][0]["rows"] == [[1], [2], [3]]
    made = mc3.client.sql("SELECT note FROM t3")  # update 3 ran once, cluster-wide
    assert made["results"][0]["rows"] == [["made by update 3"]]
    assert mc1.client.request("POST", "/1.0/rows", {"value": "after"}) == 4
    wait_for(lambda: [s for _, s in statuses(mc3).values()] == ["ONLINE"] * 3, 30.0, "all ONLINE")
    assert all(m["schema_external"] == 3 for m in mc1.members().values())
    for node in (mc1, mc2, mc3):
        assert node.hooks().count(f"on_start {node.name}") == 2

    restart(mc2, daemons, 2)  # the old code, after the upgrade
    wait_for(lambda: database(mc2) == "behind", 60.0, "mc2 to refuse to serve")
    assert "upgrade this member" in str(mc2.client.status()["detail"])
    with pytest.raises(Unavailable, match="upgrade this member"):
        mc2.client.request("POST", "/1.0/rows", {"value": "old"})
    assert mc1.members()["mc2"]["schema_external"] == 3  # it recorded nothing
    restart(mc2, daemons, 3)
    wait_for(lambda: database(mc2) == "ready", 60.0, "mc2 ready once upgraded")
