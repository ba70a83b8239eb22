"""Roles as members come and go: voters, stand-bys and spares as the database assigns
them, recorded by the leader's heartbeats; a spare, which holds no replica, still serves
the whole API through the other members; a lost voter's vote goes to a stand-by, and
the lost member comes back as a stand-by."""

from __future__ import annotations

import pytest

from tests.cluster.conftest import Daemons
from tests.cluster.forming import form, statuses
from tests.cluster.processes import wait_for


@pytest.mark.timeout(900)
def test_a_spare_serves_through_the_others_and_is_promoted_when_room_frees(
    daemons: Daemons,
) -> None:
    mc1, _, mc3 = form(3, lambda name: daemons.program(name, "--voters", "1", "--standbys", "1"))
    wait_for(
        lambda: (
            statuses(mc1)
            == {
                "mc1": ("voter", "ONLINE"),
                "mc2": ("stand-by", "ONLINE"),
                "mc3": ("spare", "ONLINE"),
            }
        ),
        60.0,
        "one voter, one stand-by, one spare",
    )
    # the spare has no replica: its reads and writes go to the others
    assert mc3.client.request("POST", "/1.0/rows", {"value": "from a spare"}) == 1
    assert mc3.client.sql("SELECT value FROM t1")["results"][0]["rows"] == [["from a spare"]]
    assert sorted(mc3.members()) == ["mc1", "mc2", "mc3"]
    assert mc3.client.add_token("mc4")

    mc1.client.remove_member("mc2")
    wait_for(
        lambda: statuses(mc1) == {"mc1": ("voter", "ONLINE"), "mc3": ("stand-by", "ONLINE")},
        60.0,
        "the spare to take the free stand-by place",
    )
    assert any("on_heartbeat mc1 mc3 spare->stand-by" in line for line in mc1.hooks())


@pytest.mark.timeout(900)
def test_a_lost_voter_is_replaced_by_a_stand_by(daemons: Daemons) -> None:
    nodes = form(4, daemons.program)
    mc1 = nodes[0]
    wait_for(
        lambda: (
            sorted(role for role, _ in statuses(mc1).values())
            == ["stand-by", "voter", "voter", "voter"]
        ),
        60.0,
        "three voters and a stand-by",
    )
    standby = next(n for n in nodes if statuses(mc1)[n.name][0] == "stand-by")
    lost = next(n for n in nodes if n is not standby and n is not mc1)
    lost.process.kill()
    survivor = mc1  # never the lost one
    wait_for(
        lambda: (
            statuses(survivor)[standby.name][0] == "voter"
            and statuses(survivor)[lost.name] == ("spare", "OFFLINE")
        ),
        90.0,
        f"{standby.name} to take {lost.name}'s vote",
    )
    assert survivor.client.request("POST", "/1.0/rows", {"value": "three voters again"}) == 1

    lost.process.start()
    lost.process.wait_ready()
    wait_for(
        lambda: statuses(survivor)[lost.name] == ("stand-by", "ONLINE"),
        90.0,
        f"{lost.name} back as a stand-by",
    )
    assert lost.client.sql("SELECT value FROM t1")["results"][0]["rows"] == [["three voters again"]]
