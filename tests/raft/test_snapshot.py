"""Snapshots (thesis chapter 5): compaction, sending a snapshot to a replica too far
behind, restoring it, and keeping the log entries after it when they match."""

from __future__ import annotations

import random

import pytest

from nodehost.raft import CompactedError, MemoryLogReader, Peer, RaftConfig
from nodehost.raft.progress import ProgressState
from protos import raft_pb2 as pb

from .network import Network


def compacted_cluster(seed: int) -> Network:
    """1 leads; 3 was away for 20 entries, which 1 and 2 then compacted."""
    net = Network.of(3, seed=seed, trace=True)
    net.elect(1)
    net.isolate(3)
    for i in range(20):
        net.propose(1, b"w%d" % i)
    net.stabilize()
    for rid in (1, 2):
        net.take_snapshot(rid)
    assert net.nodes[1].log.first_index() > net.peer(3).raft.log.last_index() + 1
    return net


def test_5_1_compaction_drops_the_log_below_the_snapshot() -> None:
    net = compacted_cluster(seed=1)
    log = net.nodes[1].log
    index = log.snapshot().index
    assert log.first_index() == index + 1
    with pytest.raises(CompactedError):
        log.entries(index, index + 1, 1 << 20)
    assert log.term(index) == log.snapshot().term


def test_5_1_a_replica_too_far_behind_gets_a_snapshot() -> None:
    net = compacted_cluster(seed=2)
    net.heal()
    net.tick(ticks=2)
    assert net.trace is not None
    assert any(line.startswith("1->3 INSTALL_SNAPSHOT") for line in net.trace)
    # The network recovered 3's state machine from the snapshot's data and checked
    # every entry it applied after it; all acknowledged writes are there.
    assert net.applied(3) == net.peer(1).raft.log.last_index()
    assert set(net.acked) <= set(net.nodes[3].sm.keys)
    assert net.nodes[3].log.snapshot().index == net.nodes[1].log.snapshot().index


def test_5_1_the_update_carries_the_snapshot_and_only_later_entries() -> None:
    net = compacted_cluster(seed=3)
    ss = net.nodes[1].log.snapshot()
    peer3 = net.peer(3)
    assert peer3.restore(ss)
    u = peer3.get_update()
    assert u.snapshot is ss
    assert u.must_sync
    assert u.committed == []
    assert peer3.committed == ss.index
    assert peer3.membership == ss.membership


def test_5_1_a_snapshot_the_log_already_covers_only_moves_the_commit_index() -> None:
    net = Network.of(3, seed=4)
    net.elect(1)
    net.filters.append(lambda m: m.from_id == 1 and m.to == 3 and not m.entries)
    for i in range(5):
        net.propose(1, b"w%d" % i)
    net.stabilize()
    peer3 = net.peer(3)
    last = peer3.raft.log.last_index()
    assert peer3.committed < last
    # A snapshot at an index 3 holds with the same term: keep the log, commit.
    index = last - 2
    ss = pb.Snapshot(shard_id=1, index=index, term=peer3.raft.log.term(index))
    assert not peer3.restore(ss)
    assert peer3.committed == index
    assert peer3.raft.log.last_index() == last


def test_5_1_an_older_snapshot_is_ignored() -> None:
    net = Network.of(3, seed=5)
    net.elect(1)
    net.propose(1, b"w")
    net.stabilize()
    peer2 = net.peer(2)
    assert not peer2.restore(pb.Snapshot(shard_id=1, index=2, term=1))
    assert peer2.committed == net.peer(1).committed


def test_a_failed_snapshot_transfer_is_retried() -> None:
    net = compacted_cluster(seed=6)
    net.filters.append(lambda m: m.type == pb.INSTALL_SNAPSHOT)
    net.heal()
    net.tick(ticks=2)
    pr = net.peer(1).raft.progress[3]
    assert pr.state is ProgressState.PROBE  # reported failed: back to probing
    net.filters.clear()
    net.tick(ticks=3)
    assert net.applied(3) == net.peer(1).raft.log.last_index()


def test_until_the_transfer_is_reported_nothing_else_is_sent() -> None:
    net = compacted_cluster(seed=7)
    net.heal()
    net.isolate(3)  # so the snapshot is never delivered nor reported
    net.peer(1).report_unreachable(3)
    leader = net.peer(1).raft
    pr = leader.progress[3]
    pr.become_snapshot(net.nodes[1].log.snapshot().index)
    assert pr.is_paused()
    net.propose(1, b"more")
    net.stabilize()
    assert pr.state is ProgressState.SNAPSHOT


def test_a_restart_resumes_from_the_snapshot_and_the_log() -> None:
    net = Network.of(3, seed=8)
    net.elect(1)
    for i in range(10):
        net.propose(1, b"w%d" % i)
    net.stabilize()
    net.take_snapshot(2, overhead=3)
    for i in range(3):
        net.propose(1, b"x%d" % i)
    net.stabilize()
    before = net.nodes[2].sm.copy()
    net.crash(2)
    net.restart(2)
    # Its commit index was saved without an fsync and may be lost: the leader's
    # next heartbeat restores it.
    net.tick(ticks=2)
    assert net.nodes[2].sm.keys == before.keys
    assert net.peer(2).membership == net.peer(1).membership


def test_restart_hands_out_entries_after_what_the_state_machine_holds() -> None:
    log = MemoryLogReader()
    members = {1: "a"}
    peer = Peer(RaftConfig(shard_id=1, replica_id=1), log, random.Random(1), members)
    while True:
        peer.tick()
        if not peer.has_update():
            if peer.is_leader() and peer.committed == 2:
                break
            continue
        u = peer.get_update()
        log.append(u.entries)
        if u.state is not None:
            log.set_state(u.state)
        log.sync()
        peer.commit_update(u)
    peer.propose([pb.Entry(key=k, cmd=b"c") for k in (1, 2, 3)])
    u = peer.get_update()
    log.append(u.entries)
    peer.commit_update(u)
    u = peer.get_update()
    log.set_state(u.state)  # type: ignore[arg-type]
    log.sync()
    peer.commit_update(u)
    assert peer.committed == 5
    again = Peer(RaftConfig(shard_id=1, replica_id=1), log, random.Random(2), applied=3)
    u = again.get_update()
    assert [e.index for e in u.committed] == [4, 5]
    assert again.membership == peer.membership


def test_a_restart_trusts_what_the_state_machine_applied() -> None:
    # The commit index reached the disk without an fsync and was lost; the state
    # machine (on disk) had applied the entries: they were committed.
    net = Network.of(3, seed=9)
    net.elect(1)
    for i in range(3):
        net.propose(1, b"w%d" % i)
    net.stabilize()
    node = net.nodes[2]
    applied = node.sm.applied
    node.log.set_state(pb.State(term=node.log.state().term, vote=node.log.state().vote, commit=1))
    again = Peer(node.config, node.log, random.Random(3), applied=applied)
    assert again.committed == applied
    assert again.get_update().committed == []
