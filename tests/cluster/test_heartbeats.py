"""Heartbeats: a member SIGKILLed is OFFLINE within a few heartbeats, ONLINE again once
restarted; the leader records the times; the restarted member keeps its identity."""

from __future__ import annotations

import pytest

from nodehost.cluster.members import parse_time
from tests.cluster.conftest import Daemons
from tests.cluster.forming import form, statuses
from tests.cluster.processes import wait_for


@pytest.mark.timeout(600)
def test_a_killed_member_goes_offline_and_comes_back_online(daemons: Daemons) -> None:
    mc1, mc2, mc3 = form(3, lambda name: daemons.program(name, "--heartbeat", "1"))
    # the hooks of forming the cluster ran where they should, by the time init answered
    assert mc1.hooks()[:2] == ["on_bootstrap mc1 []", "on_start mc1"]
    assert {"on_new_member mc1 mc2", "on_new_member mc1 mc3"} <= set(mc1.hooks())
    assert mc2.hooks()[:3] == ["on_join mc2 []", "on_start mc2", "on_new_member mc2 mc3"]
    assert mc3.hooks()[:2] == ["on_join mc3 []", "on_start mc3"]
    fingerprint = mc1.members()["mc3"]["fingerprint"]
    before = parse_time(mc1.members()["mc3"]["heartbeat"])
    wait_for(
        lambda: parse_time(mc1.members()["mc3"]["heartbeat"]) > before,  # type: ignore[operator]
        30.0,
        "the leader to record a newer heartbeat for mc3",
    )

    mc3.process.kill()
    # three missed heartbeats (1 s apart) make a member OFFLINE; bounded generously
    wait_for(lambda: statuses(mc1)["mc3"][1] == "OFFLINE", 30.0, "mc3 OFFLINE seen from mc1")
    assert statuses(mc2)["mc3"][1] == "OFFLINE"
    assert statuses(mc1)["mc1"][1] == statuses(mc1)["mc2"][1] == "ONLINE"
    assert statuses(mc1)["mc3"][0] == "voter"  # three members: nobody can take its vote

    mc3.process.start()
    mc3.process.wait_ready()
    wait_for(lambda: statuses(mc1)["mc3"] == ("voter", "ONLINE"), 60.0, "mc3 ONLINE again")
    assert mc3.client.status()["name"] == "mc3"
    assert mc1.members()["mc3"]["fingerprint"] == fingerprint
    assert mc3.hooks().count("on_start mc3") == 2  # after the join, after the restart
