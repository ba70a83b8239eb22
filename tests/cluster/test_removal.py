"""Removing members: from the removed member's own state directory, an unreachable one
only with --force, a force-removed one that comes back, and the last voter never."""

from __future__ import annotations

import pytest

from nodehost.cluster import Conflict, NotFound, Unreachable
from tests.cluster.conftest import Daemons
from tests.cluster.forming import form, statuses
from tests.cluster.processes import ctl, fails, ok, wait_for


@pytest.mark.timeout(900)
def test_a_member_removes_itself_and_can_join_again(daemons: Daemons) -> None:
    mc1, mc2, mc3 = form(3, daemons.program)
    ok(ctl(mc3.process.state_dir, "cluster", "remove", "mc3"))
    assert mc3.client.status()["database"] == "uninitialized"  # reset before the answer
    assert sorted(mc1.members()) == ["mc1", "mc2"]
    assert sorted(mc2.members()) == ["mc1", "mc2"]
    assert not (mc3.process.state_dir / "daemon.json").exists()
    assert not (mc3.process.state_dir / "database").exists()
    assert not (mc3.process.state_dir / "cluster.key").exists()
    assert "pre_remove mc3 False" in mc3.hooks()
    for node in (mc1, mc2):
        wait_for(lambda n=node: f"post_remove {n.name} False" in n.hooks(), 10.0, "post_remove")  # type: ignore[misc]
    fails(ctl(mc3.process.state_dir, "cluster", "list"), "database is uninitialized")

    # its old certificate is not trusted any more; it joins again under a new one
    token = mc2.client.add_token("mc3")
    mc3.client.join("mc3", mc3.address, token)
    wait_for(lambda: statuses(mc1).get("mc3") == ("voter", "ONLINE"), 60.0, "mc3 back")
    assert mc3.client.sql("SELECT count(*) FROM core_cluster_members")["results"][0]["rows"] == [
        [3]
    ]


@pytest.mark.timeout(900)
def test_an_unreachable_member_needs_force_and_a_returning_one_resets(daemons: Daemons) -> None:
    mc1, mc2, mc3 = form(3, daemons.program)
    mc2.process.kill()
    with pytest.raises(Unreachable, match="use --force"):
        mc1.client.remove_member("mc2")
    assert sorted(mc1.members()) == ["mc1", "mc2", "mc3"]  # nothing changed

    message = fails(ctl(mc3.process.state_dir, "cluster", "remove", "mc2"), "use --force")
    assert "Nothing was changed" in message
    ok(ctl(mc3.process.state_dir, "cluster", "remove", "mc2", "--force"))
    assert sorted(mc1.members()) == ["mc1", "mc3"]
    assert mc3.client.request("POST", "/1.0/rows", {"value": "two members"}) == 1

    # mc2 comes back: it is no member any more, finds out, and forgets the cluster
    mc2.process.start()
    mc2.process.wait_answering()
    wait_for(
        lambda: mc2.client.status()["database"] == "uninitialized", 90.0, "mc2 to reset itself"
    )
    assert not (mc2.process.state_dir / "daemon.json").exists()
    assert sorted(mc1.members()) == ["mc1", "mc3"]
    assert statuses(mc1) == {"mc1": ("voter", "ONLINE"), "mc3": ("voter", "ONLINE")}


@pytest.mark.timeout(600)
def test_the_last_voter_cannot_be_removed(daemons: Daemons) -> None:
    (mc1,) = form(1, daemons.program)
    with pytest.raises(Conflict, match="last member and its last voter"):
        mc1.client.remove_member("mc1")
    fails(ctl(mc1.process.state_dir, "cluster", "remove", "mc1", "--force"), "last voter")
    with pytest.raises(NotFound, match="no member named 'nobody'"):
        mc1.client.remove_member("nobody")
    assert statuses(mc1) == {"mc1": ("voter", "ONLINE")}
