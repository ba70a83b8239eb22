"""Scenarios from the Raft thesis (Ongaro 2014), one per rule, named after its section.

Each test: set up a network, act, check. The network checks Raft's safety properties
after every step on its own; these tests check the behaviour each section describes.
"""

from __future__ import annotations

from nodehost.raft import Role
from protos import raft_pb2 as pb

from .network import Network

ELECTION = 10


def test_3_4_a_follower_that_hears_nothing_campaigns_and_wins() -> None:
    net = Network.of(3, seed=1)
    net.tick(ticks=2 * ELECTION)
    leader = net.leader()
    assert leader != 0
    assert all(net.peer(r).leader_id == leader for r in (1, 2, 3))
    assert net.peer(leader).term == 2


def test_3_4_election_timeouts_are_randomized_within_one_to_two_timeouts() -> None:
    timeouts = set()
    for seed in range(20):
        net = Network.of(1, seed=seed)
        timeouts.add(net.peer(1).raft.randomized_timeout)
    assert min(timeouts) >= ELECTION
    assert max(timeouts) < 2 * ELECTION
    assert len(timeouts) > 3


def test_3_4_a_candidate_needs_a_majority() -> None:
    net = Network.of(5, seed=2)
    net.partition([1, 2], [3, 4, 5])
    net.step(1, pb.Message(type=pb.ELECTION))
    net.stabilize()
    assert net.peer(1).role is Role.CANDIDATE
    net.heal()
    net.tick(ticks=3 * ELECTION)
    assert net.leader() != 0


def test_3_4_a_replica_votes_once_per_term() -> None:
    net = Network.of(3, seed=3)
    net.cut_link(1, 2)
    net.step(1, pb.Message(type=pb.ELECTION))
    net.step(2, pb.Message(type=pb.ELECTION))
    net.stabilize()
    # Both campaigned in term 2; 3 voted for one of them only.
    roles = {r: net.peer(r).role for r in (1, 2)}
    assert (
        sorted(roles.values()) == [Role.FOLLOWER, Role.LEADER]
        or list(roles.values()).count(Role.LEADER) <= 1
    )
    assert net.peer(3).raft.vote in (1, 2)


def test_3_5_entries_replicate_and_commit_on_all() -> None:
    net = Network.of(3, seed=4)
    net.elect(1)
    keys = [net.propose(1, b"cmd%d" % i) for i in range(10)]
    net.stabilize()
    assert all(k in net.acked for k in keys)
    last = net.peer(1).raft.log.last_index()
    assert [net.applied(r) for r in (1, 2, 3)] == [last] * 3


def test_3_5_a_follower_forwards_proposals_to_the_leader() -> None:
    net = Network.of(3, seed=5)
    net.elect(1)
    key = net.propose(3, b"forwarded")
    net.stabilize()
    assert key in net.acked


def test_3_5_without_a_leader_proposals_are_dropped() -> None:
    net = Network.of(3, seed=6)
    net.peer(2).propose([pb.Entry(key=99, cmd=b"x")])
    u = net.peer(2).get_update()
    assert [e.key for e in u.dropped_entries] == [99]


def test_3_5_a_follower_with_a_divergent_tail_is_repaired() -> None:
    net = Network.of(3, seed=7)
    net.elect(1)
    net.isolate(1)
    for i in range(5):
        net.propose(1, b"lost%d" % i)  # never replicated
    net.stabilize()
    net.elect(2)
    keys = [net.propose(2, b"kept%d" % i) for i in range(3)]
    net.stabilize()
    net.heal()
    net.tick(ticks=2)
    assert all(k in net.acked for k in keys)
    assert net.peer(1).role is Role.FOLLOWER
    log1, log2 = net.peer(1).raft.log, net.peer(2).raft.log
    assert log1.last_index() == log2.last_index()
    assert [log1.term(i) for i in range(1, log1.last_index() + 1)] == [
        log2.term(i) for i in range(1, log2.last_index() + 1)
    ]


def test_3_5_fast_back_off_skips_a_whole_term_per_round_trip() -> None:
    net = Network.of(3, seed=8, max_replicate_bytes=1 << 20)
    net.elect(1)
    net.isolate(1)
    for i in range(50):
        net.propose(1, b"stale%d" % i)
    net.stabilize()
    net.elect(2)
    net.propose(2, b"new")
    net.stabilize()
    net.heal()
    net.trace = []
    net.tick(2, ticks=1)
    rejects = [line for line in net.trace if "1->2 REPLICATE_RESP" in line and "reject" in line]
    assert len(rejects) <= 2, rejects


def test_3_6_1_a_vote_goes_only_to_an_up_to_date_log() -> None:
    net = Network.of(3, seed=9)
    net.elect(1)
    net.cut_link(1, 3)
    net.propose(1, b"x")
    net.stabilize()  # 2 has the entry, 3 does not
    net.isolate(1)
    net.step(3, pb.Message(type=pb.ELECTION))
    net.stabilize()
    assert net.peer(3).role is not Role.LEADER
    net.step(2, pb.Message(type=pb.ELECTION))
    net.stabilize()
    assert net.peer(2).role is Role.LEADER


def test_3_6_2_a_new_leader_commits_its_predecessors_entries_through_its_noop() -> None:
    net = Network.of(3, seed=10)
    net.elect(1)
    net.cut_link(1, 3)
    net.cut_link(1, 2)
    net.propose(1, b"x")
    net.stabilize()
    net.heal()
    net.isolate(1)
    # 2 and 3 never saw x: the new leader's no-op is the first entry of term 3.
    net.elect(2)
    log = net.peer(2).raft.log
    assert log.term(log.committed) == net.peer(2).term
    assert log.entries(log.committed, log.committed + 1, 1 << 20)[0].cmd == b""
