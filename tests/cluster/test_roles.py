"""Roles as members come and go: voters, stand-bys and spares as the database assigns
them, recorded by the leader's heartbeats; a spare, which holds no replica, still serves
the whole API through the other members, and takes a stand-by's place when one frees.
(A lost voter's vote going to a stand-by is in test_membership.py.)"""

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
