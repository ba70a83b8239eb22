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
    # Both campaigned in term 2 and each needed 3's vote: 3 gave it to the first asker.
    assert net.peer(3).raft.vote == 1
    assert net.peer(1).role is Role.LEADER
    assert net.peer(2).role is not Role.LEADER


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
    # 1 and 2 each hold 50 entries the other lacks, from index 5 on: a leader moving
    # `next` back one entry per rejection would need 50 round trips.
    net = Network.of(3, seed=8, trace=True)
    net.elect(1)
    net.isolate(1)
    for i in range(50):
        net.propose(1, b"stale%d" % i)
    net.stabilize()
    net.elect(2)
    for i in range(50):
        net.propose(2, b"new%d" % i)
    net.stabilize()
    net.crash(2)  # so that the next leader knows nothing of 1's log
    net.restart(2)
    net.elect(2)
    assert net.trace is not None
    net.trace.clear()
    net.heal()
    net.tick(ticks=2)
    rejects = [
        line for line in net.trace if line.startswith("1->2 REPLICATE_RESP") and "reject" in line
    ]
    assert len(rejects) == 1, rejects
    assert net.peer(1).raft.log.last_index() == net.peer(2).raft.log.last_index()


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


def test_3_4_the_leader_heartbeats_every_heartbeat_rtt() -> None:
    net = Network.of(3, seed=12, heartbeat_rtt=3, trace=True)
    net.elect(1)
    assert net.trace is not None
    net.trace.clear()
    net.tick(ticks=9)
    heartbeats = [line for line in net.trace if line.startswith("1->2 HEARTBEAT ")]
    assert len(heartbeats) == 3


def test_3_4_a_stale_leader_steps_down_on_a_newer_term() -> None:
    net = Network.of(3, seed=13)
    net.elect(1)
    net.isolate(1)
    net.elect(2)
    net.heal()
    net.tick(1)  # its heartbeat is answered with term 3
    assert net.peer(1).role is Role.FOLLOWER
    assert net.peer(1).term == 3


def test_3_4_a_proposal_on_a_deposed_leader_is_never_committed() -> None:
    net = Network.of(3, seed=14)
    net.elect(1)
    net.isolate(1)
    lost = net.propose(1, b"lost")
    net.stabilize()
    net.elect(2)
    kept = net.propose(2, b"kept")
    net.stabilize()
    net.heal()
    net.tick(ticks=3)
    assert kept in net.acked
    assert lost not in net.acked
    assert all(lost not in net.nodes[r].sm.keys for r in (1, 2, 3))


def test_9_6_pre_vote_keeps_a_partitioned_replica_from_raising_its_term() -> None:
    net = Network.of(3, seed=15, pre_vote=True)
    net.elect(1)
    net.isolate(3)
    net.tick(3, ticks=5 * ELECTION)
    assert net.peer(3).term == 2
    assert net.peer(3).role is Role.PRE_CANDIDATE
    net.heal()
    net.tick(ticks=2)
    # It rejoins without deposing the leader.
    assert net.peer(1).role is Role.LEADER
    assert net.peer(1).term == 2
    assert net.peer(3).leader_id == 1


def test_9_6_without_pre_vote_a_rejoining_replica_disrupts_the_leader() -> None:
    net = Network.of(3, seed=16)
    net.elect(1)
    net.isolate(3)
    net.tick(3, ticks=3 * ELECTION)
    assert net.peer(3).term > 2
    net.heal()
    net.tick(ticks=3 * ELECTION)
    assert net.peer(1).term > 2  # the term went up for everyone


def test_9_6_pre_vote_is_refused_while_the_leader_is_heard() -> None:
    net = Network.of(3, seed=17, pre_vote=True, trace=True)
    net.elect(1)
    net.step(3, pb.Message(type=pb.ELECTION))
    net.stabilize()
    assert net.trace is not None
    assert "2->3 REQUEST_PRE_VOTE_RESP t=2 reject" in net.trace
    assert net.peer(1).role is Role.LEADER and net.peer(1).term == 2


def test_6_2_check_quorum_an_isolated_leader_steps_down() -> None:
    net = Network.of(3, seed=18, check_quorum=True)
    net.elect(1)
    net.isolate(1)
    net.tick(1, ticks=2 * ELECTION)
    assert net.peer(1).role is Role.FOLLOWER


def test_6_2_without_check_quorum_an_isolated_leader_stays() -> None:
    net = Network.of(3, seed=19)
    net.elect(1)
    net.isolate(1)
    net.tick(1, ticks=5 * ELECTION)
    assert net.peer(1).role is Role.LEADER


def test_4_2_3_check_quorum_a_follower_in_lease_ignores_vote_requests() -> None:
    net = Network.of(3, seed=20, check_quorum=True)
    net.elect(1)
    net.isolate(3)
    net.tick(3, ticks=3 * ELECTION)  # 3 keeps campaigning, raising its term
    assert net.peer(3).term > 2
    net.heal()
    net.step(3, pb.Message(type=pb.ELECTION))
    net.stabilize()
    # 1 and 2 heard the leader recently: they neither vote nor adopt 3's term.
    assert net.peer(2).term == 2
    assert net.peer(1).role is Role.LEADER
