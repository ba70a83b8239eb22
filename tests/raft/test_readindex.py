"""ReadIndex (thesis 6.4): linearizable reads without writing to the log.

The network serves a read only once the replica applied up to its index, and raises
if that index is below anything committed before the read was asked."""

from __future__ import annotations

import random

from nodehost.raft import MemoryLogReader, Peer, RaftConfig, ReadContext
from protos import raft_pb2 as pb

from .network import Network


def heartbeats_with_context(net: Network) -> list[str]:
    assert net.trace is not None
    return [line for line in net.trace if " HEARTBEAT " in line and "hint=" in line]


def test_6_4_a_leader_serves_a_read_after_a_heartbeat_quorum() -> None:
    net = Network.of(3, seed=1, trace=True)
    net.elect(1)
    net.propose(1, b"w")
    net.stabilize()
    ctx = net.read(1)
    net.stabilize()
    assert net.read_served(1, ctx)
    assert net.checker.reads_served == 1
    assert len(heartbeats_with_context(net)) == 2


def test_6_4_a_leader_cut_off_from_the_quorum_never_serves_a_read() -> None:
    net = Network.of(3, seed=2)
    net.elect(1)
    net.isolate(1)
    ctx = net.read(1)
    net.tick(1, ticks=5)
    assert not net.read_served(1, ctx)
    assert net.checker.reads_served == 0


def test_6_4_a_new_leader_refuses_reads_until_its_term_has_a_commit() -> None:
    log = MemoryLogReader()
    peer = Peer(RaftConfig(shard_id=1, replica_id=1), log, random.Random(1), {1: "a", 2: "b"})
    u = peer.get_update()
    log.append(u.entries)
    peer.commit_update(u)
    peer.step(pb.Message(type=pb.ELECTION))
    peer.commit_update(peer.get_update())
    peer.step(pb.Message(type=pb.REQUEST_VOTE_RESP, from_id=2, to=1, term=2))
    assert peer.is_leader()
    peer.read_index(ReadContext(7, 1))
    u = peer.get_update()
    assert u.dropped_reads == [ReadContext(7, 1)]
    assert u.ready_to_reads == []


def test_6_4_many_reads_share_one_confirmation() -> None:
    net = Network.of(3, seed=3, trace=True)
    net.elect(1)
    assert net.trace is not None
    net.trace.clear()
    ctxs = [net.read(1) for _ in range(20)]
    net.stabilize()
    assert all(net.read_served(1, c) for c in ctxs)
    assert net.checker.reads_served == 20
    assert len(heartbeats_with_context(net)) == 2  # one round, to two followers


def test_6_4_a_single_voter_serves_reads_at_once() -> None:
    net = Network.of(1, seed=4)
    net.elect(1)
    ctx = net.read(1)
    net.stabilize()
    assert net.read_served(1, ctx)


def test_6_4_a_follower_forwards_reads_to_the_leader() -> None:
    net = Network.of(3, seed=5, trace=True)
    net.elect(1)
    ctx = net.read(3)
    net.stabilize()
    assert net.read_served(3, ctx)
    assert net.trace is not None
    assert any(line.startswith("3->1 READ_INDEX ") for line in net.trace)
    assert any(line.startswith("1->3 READ_INDEX_RESP ") for line in net.trace)


def test_6_4_a_follower_serves_only_once_it_applied_the_read_index() -> None:
    net = Network.of(3, seed=6)
    net.elect(1)
    # 3 stops receiving entries: it learns the read index but cannot apply up to it.
    net.filters.append(lambda m: m.type == pb.REPLICATE and m.to == 3)
    for i in range(3):
        net.propose(1, b"w%d" % i)
    net.stabilize()
    ctx = net.read(3)
    net.stabilize()
    assert not net.read_served(3, ctx)
    ready = net.nodes[3].ready_reads
    assert len(ready) == 1 and ready[0][1] > net.applied(3)
    net.filters.clear()
    net.tick(ticks=2)
    assert net.read_served(3, ctx)


def test_a_read_without_a_leader_is_dropped() -> None:
    net = Network.of(3, seed=7)
    ctx = net.read(2)
    net.stabilize()
    assert net.read_served(2, ctx)  # answered "dropped"
    assert net.checker.reads_served == 0


def test_a_read_forwarded_to_a_replica_that_no_longer_leads_is_dropped() -> None:
    net = Network.of(3, seed=8)
    net.elect(1)
    net.isolate(1)
    net.elect(2)
    net.heal()
    # 3 still believes in 1 only if it missed the election; make it so.
    net.peer(3).raft.leader_id = 1
    ctx = net.read(3)
    net.stabilize()
    assert net.read_served(3, ctx)
    assert net.checker.reads_served == 0


def test_pending_reads_are_dropped_when_the_leader_steps_down() -> None:
    net = Network.of(3, seed=9, check_quorum=True)
    net.elect(1)
    net.isolate(1)
    ctx = net.read(1)
    net.stabilize()
    assert not net.read_served(1, ctx)
    net.tick(1, ticks=20)
    assert net.read_served(1, ctx)  # dropped on stepping down
    assert net.checker.reads_served == 0


def test_unconfirmed_reads_expire() -> None:
    net = Network.of(3, seed=10)
    net.elect(1)
    net.isolate(1)
    ctx = net.read(1)
    net.tick(1, ticks=10)
    assert not net.read_served(1, ctx)
    net.tick(1, ticks=30)
    assert net.read_served(1, ctx)
    assert net.peer(1).is_leader()
