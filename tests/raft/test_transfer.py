"""Leader transfer (thesis 3.10): catch the target up, then TimeoutNow."""

from __future__ import annotations

import pytest

from nodehost.raft import Role
from protos import raft_pb2 as pb

from .network import Network


@pytest.mark.parametrize(("pre_vote", "check_quorum"), [(False, False), (True, True)])
def test_3_10_transfer_to_an_up_to_date_follower(pre_vote: bool, check_quorum: bool) -> None:
    net = Network.of(3, seed=1, pre_vote=pre_vote, check_quorum=check_quorum, trace=True)
    net.elect(1)
    net.peer(1).transfer_leader(3)
    net.stabilize()
    assert net.trace is not None
    assert any(line.startswith("1->3 TIMEOUT_NOW") for line in net.trace)
    assert net.peer(3).role is Role.LEADER
    assert net.peer(3).term == 3
    assert net.peer(1).role is Role.FOLLOWER


def test_3_10_a_lagging_target_is_caught_up_first() -> None:
    net = Network.of(3, seed=2, trace=True)
    net.elect(1)
    net.cut_link(1, 3)
    for i in range(5):
        net.propose(1, b"w%d" % i)
    net.stabilize()
    net.heal()
    assert net.trace is not None
    net.trace.clear()
    net.peer(1).transfer_leader(3)
    net.stabilize()
    first_timeout = next(i for i, line in enumerate(net.trace) if "TIMEOUT_NOW" in line)
    first_replicate = next(
        i for i, line in enumerate(net.trace) if line.startswith("1->3 REPLICATE")
    )
    assert first_replicate < first_timeout
    assert net.peer(3).role is Role.LEADER
    assert net.peer(3).raft.log.last_index() >= 4 + 5


def test_3_10_proposals_are_dropped_while_transferring() -> None:
    net = Network.of(3, seed=3)
    net.elect(1)
    net.isolate(3)
    net.peer(1).transfer_leader(3)
    net.peer(1).propose([pb.Entry(key=99, cmd=b"late")])
    u = net.peer(1).get_update()
    assert [e.key for e in u.dropped_entries] == [99]
    net.peer(1).commit_update(u)


def test_3_10_a_transfer_that_does_not_finish_is_abandoned() -> None:
    net = Network.of(3, seed=4)
    net.elect(1)
    net.isolate(3)
    net.peer(1).transfer_leader(3)
    net.tick(1, ticks=11)
    assert net.peer(1).is_leader()
    assert net.peer(1).raft.transfer_target == 0
    key = net.propose(1, b"accepted again")
    net.stabilize()
    assert key in net.acked


@pytest.mark.parametrize("target", [1, 9])
def test_3_10_transfer_to_itself_or_a_stranger_is_ignored(target: int) -> None:
    net = Network.of(3, seed=5)
    net.elect(1)
    net.peer(1).transfer_leader(target)
    assert net.peer(1).raft.transfer_target == 0


def test_3_10_a_follower_passes_the_request_to_the_leader() -> None:
    net = Network.of(3, seed=6)
    net.elect(1)
    net.peer(2).transfer_leader(3)
    net.stabilize()
    assert net.peer(3).role is Role.LEADER
