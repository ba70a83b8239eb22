"""Single-server membership changes (thesis 4.1-4.3), non-voting replicas and witnesses.

Changes take effect when their entry commits, on every replica, through the same
`membership.check`/`apply` the state machine layer uses: the network keeps that
layer's view too, and these tests compare the two."""

from __future__ import annotations

import pytest

from nodehost.raft import Role
from protos import raft_pb2 as pb

from .network import Network

ELECTION = 10


def agree(net: Network, *rids: int) -> pb.Membership:
    """Every listed replica's core and state machine agree on the membership."""
    first = net.peer(rids[0]).membership
    for rid in rids:
        assert net.peer(rid).membership == first, rid
        assert net.nodes[rid].sm.membership == first, rid
    return first


def test_4_1_adding_a_voter() -> None:
    net = Network.of(3, seed=1)
    net.elect(1)
    net.add_node(4)
    net.propose_config_change(1, pb.ADD_NODE, 4)
    net.stabilize()
    net.tick(ticks=2)
    m = agree(net, 1, 2, 3, 4)
    assert sorted(m.addresses) == [1, 2, 3, 4]
    assert net.peer(4).role is Role.FOLLOWER
    assert net.peer(4).raft.log.last_index() == net.peer(1).raft.log.last_index()
    # Four voters: two replicas down means no majority.
    net.isolate(3)
    net.isolate(4)
    key = net.propose(1, b"needs three")
    net.stabilize()
    assert key not in net.acked
    net.heal()
    net.tick(ticks=2)
    assert key in net.acked


def test_4_1_one_change_at_a_time() -> None:
    net = Network.of(3, seed=2)
    net.elect(1)
    net.add_node(4)
    net.add_node(5)
    net.propose_config_change(1, pb.ADD_NODE, 4)
    net.propose_config_change(1, pb.ADD_NODE, 5)
    u = net.peer(1).get_update()
    assert [pb.ConfigChange.FromString(e.cmd).replica_id for e in u.dropped_entries] == [5]
    net.peer(1).commit_update(u)


def test_4_1_no_change_before_the_leader_commits_in_its_term() -> None:
    # Ongaro's raft-dev bug (2015): a change on top of a predecessor's uncommitted one.
    net = Network.of(3, seed=3)
    net.step(1, pb.Message(type=pb.ELECTION))
    net.process(1)
    net.deliver_due()
    net.process(2)
    net.process(3)
    net.deliver_due()
    assert net.peer(1).is_leader()
    assert not net.peer(1).raft.term_committed
    net.add_node(4)
    net.propose_config_change(1, pb.ADD_NODE, 4)
    u = net.peer(1).get_update()
    assert len(u.dropped_entries) == 1
    net.peer(1).commit_update(u)


def test_4_2_a_removed_replica_is_harmless() -> None:
    net = Network.of(3, seed=4)
    net.elect(1)
    # 3 never learns that its removal (entry 5) committed.
    net.filters.append(lambda m: m.to == 3 and m.commit >= 5)
    net.propose_config_change(1, pb.REMOVE_NODE, 3)
    net.stabilize()
    net.tick(ticks=2)
    assert sorted(agree(net, 1, 2).addresses) == [1, 2]
    assert not net.peer(3).removed
    # The leader no longer talks to 3: left running, it times out and campaigns,
    # and those who know it was removed ignore it.
    net.tick(ticks=10 * ELECTION)
    assert net.peer(3).term > 2
    assert net.peer(1).is_leader() and net.peer(1).term == 2
    assert net.peer(2).term == 2
    key = net.propose(1, b"still works")
    net.stabilize()
    assert key in net.acked


def test_4_2_a_replica_that_knows_it_was_removed_stays_quiet() -> None:
    net = Network.of(3, seed=14, trace=True)
    net.elect(1)
    net.propose_config_change(1, pb.REMOVE_NODE, 3)
    net.stabilize()
    assert net.peer(3).removed  # the leader's last word told it
    assert net.trace is not None
    net.trace.clear()
    net.tick(ticks=10 * ELECTION)
    # It only asks, rarely and by pre-vote, whether the shard lost its leader.
    asks = [line for line in net.trace if line.startswith("3->")]
    assert 0 < len(asks) <= 6
    assert all("REQUEST_PRE_VOTE" in line for line in asks)
    assert net.peer(3).term == 2 and net.peer(1).term == 2


def test_4_2_a_removed_id_never_comes_back() -> None:
    net = Network.of(3, seed=5)
    net.elect(1)
    net.propose_config_change(1, pb.REMOVE_NODE, 3)
    net.stabilize()
    net.propose_config_change(1, pb.ADD_NODE, 3)
    net.stabilize()
    m = agree(net, 1, 2)
    assert 3 not in m.addresses
    assert m.removed[3]


def test_4_2_a_leader_that_removes_itself_hands_leadership_over() -> None:
    net = Network.of(3, seed=6, trace=True)
    net.elect(1)
    net.propose_config_change(1, pb.REMOVE_NODE, 1)
    net.stabilize()
    net.tick(ticks=3)
    assert net.trace is not None
    assert any(line.startswith("1->") and "TIMEOUT_NOW" in line for line in net.trace)
    leader = net.leader()
    assert leader in (2, 3)
    assert net.peer(1).removed and not net.peer(1).is_leader()
    assert sorted(agree(net, 2, 3).addresses) == [2, 3]
    key = net.propose(leader, b"after")
    net.stabilize()
    assert key in net.acked


def test_4_2_a_two_voter_shard_survives_the_leader_removing_itself_and_crashing() -> None:
    # 1 removes itself; the removal (entry 4) commits on 1 only, 1 also holds an entry
    # 2 lacks, and 1 crashes before handing over. 2 still counts 1, and 1 (whose log
    # is longer) refuses to vote for it: 1 must lead once more, only to hand over.
    net = Network.of(2, seed=7, max_replicate_bytes=1)
    net.elect(1)
    net.filters.append(
        lambda m: (
            m.from_id == 1
            and (m.type == pb.TIMEOUT_NOW or m.commit >= 4 or any(e.index >= 5 for e in m.entries))
        )
    )
    net.propose_config_change(1, pb.REMOVE_NODE, 1)
    net.propose(1, b"after")
    net.stabilize()
    assert net.peer(1).removed and net.peer(1).committed == 4
    assert net.peer(2).committed < 4
    assert net.peer(1).raft.log.last_index() > net.peer(2).raft.log.last_index()
    net.nodes[1].log.sync()  # the commit index reached the disk with a later write
    net.crash(1)
    net.restart(1)
    assert net.peer(1).removed
    net.filters.clear()
    net.tick(ticks=6 * ELECTION)
    assert net.leader() == 2
    assert sorted(agree(net, 2).addresses) == [2]


def test_4_2_ordered_config_change_rejects_a_stale_id() -> None:
    net = Network.of(3, seed=8, ordered_config_change=True)
    net.elect(1)
    current = net.peer(1).membership.config_change_id
    net.add_node(4)
    net.propose_config_change(1, pb.ADD_NODE, 4, cc_id=current + 100)
    net.stabilize()
    assert 4 not in agree(net, 1, 2, 3).addresses
    net.propose_config_change(1, pb.ADD_NODE, 4, cc_id=current)
    net.stabilize()
    assert 4 in agree(net, 1, 2, 3).addresses


def test_a_non_voting_replica_gets_the_log_but_no_say() -> None:
    net = Network.of(3, seed=9)
    net.elect(1)
    net.add_node(4, is_non_voting=True)
    net.propose_config_change(1, pb.ADD_NON_VOTING, 4)
    net.stabilize()
    assert net.peer(4).role is Role.NON_VOTING
    key = net.propose(1, b"w")
    net.stabilize()
    assert key in net.nodes[4].sm.keys
    # It never campaigns, and its vote is never counted.
    net.isolate(1)
    net.tick(4, ticks=5 * ELECTION)
    assert net.peer(4).role is Role.NON_VOTING
    net.isolate(3)
    net.step(2, pb.Message(type=pb.ELECTION))
    net.stabilize()
    assert net.peer(2).role is Role.CANDIDATE  # 4 granted, but only 2 of 3 voters count


def test_promoting_a_non_voting_replica() -> None:
    net = Network.of(3, seed=10)
    net.elect(1)
    net.add_node(4, is_non_voting=True)
    net.propose_config_change(1, pb.ADD_NON_VOTING, 4)
    net.stabilize()
    net.propose_config_change(1, pb.ADD_NODE, 4)
    net.stabilize()
    net.tick(ticks=2)
    assert net.peer(4).role is Role.FOLLOWER
    m = agree(net, 1, 2, 3, 4)
    assert 4 in m.addresses and 4 not in m.non_votings


def test_a_witness_votes_stores_metadata_and_never_leads() -> None:
    net = Network.of(2, seed=11)
    net.elect(1)
    net.add_node(3, is_witness=True)
    net.propose_config_change(1, pb.ADD_WITNESS, 3)
    net.stabilize()
    key = net.propose(1, b"payload")
    net.stabilize()
    witness_log = net.nodes[3].log
    entries = witness_log.entries(1, witness_log.last_index() + 1, 1 << 30)
    assert any(e.type == pb.CONFIG_CHANGE for e in entries)
    assert all(e.type == pb.CONFIG_CHANGE or (e.type == pb.METADATA and not e.cmd) for e in entries)
    assert key in net.acked
    # 1 and the witness are a majority of {1, 2, witness}: 2 down, writes go on.
    net.isolate(2)
    key = net.propose(1, b"with the witness")
    net.stabilize()
    assert key in net.acked
    # The witness never campaigns; with 1 gone, 2 wins with the witness's vote.
    net.heal()
    net.tick(ticks=2)
    net.isolate(1)
    net.tick(ticks=5 * ELECTION)
    assert net.peer(3).role is Role.WITNESS
    assert net.leader() == 2


def test_a_witness_far_behind_gets_a_metadata_only_snapshot() -> None:
    net = Network.of(2, seed=12, trace=True)
    net.elect(1)
    for i in range(10):
        net.propose(1, b"w%d" % i)
    net.stabilize()
    net.take_snapshot(1)
    net.take_snapshot(2)
    net.add_node(3, is_witness=True)
    net.propose_config_change(1, pb.ADD_WITNESS, 3)
    net.stabilize()
    net.tick(ticks=2)
    assert net.trace is not None
    snaps = [line for line in net.trace if line.startswith("1->3 INSTALL_SNAPSHOT")]
    assert snaps and all(line.endswith("witness") for line in snaps)
    assert net.peer(3).committed == net.peer(1).committed


@pytest.mark.parametrize("kind", [pb.ADD_NON_VOTING, pb.ADD_WITNESS])
def test_a_joining_replica_learns_the_initial_membership(kind: pb.ConfigChangeType) -> None:
    net = Network.of(3, seed=13)
    net.elect(1)
    net.add_node(4, is_non_voting=kind == pb.ADD_NON_VOTING, is_witness=kind == pb.ADD_WITNESS)
    net.propose_config_change(1, kind, 4)
    net.stabilize()
    net.tick(ticks=2)
    assert agree(net, 1, 4)


def test_a_witness_gets_entries_only_after_the_leader_saved_them() -> None:
    # 1 and witness 2 both must vote. Had 2 received an entry that 1 then lost in a
    # crash before saving it, 2's log would be ahead of the only replica that can
    # lead, and no election could ever succeed.
    net = Network.of(1, seed=15)
    net.elect(1)
    net.add_node(2, is_witness=True)
    net.propose_config_change(1, pb.ADD_WITNESS, 2)
    net.stabilize()
    assert sorted(net.peer(1).raft.voters) == [1, 2]
    net.propose(1, b"unsaved")
    net.process(1, split=True)  # the leader's replicate went out; its save did not happen
    net.deliver_due()
    assert net.peer(2).raft.log.last_index() < net.peer(1).raft.log.last_index()
    net.crash(1)
    net.restart(1)
    net.tick(ticks=5 * ELECTION)
    assert net.leader() == 1
