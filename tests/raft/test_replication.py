"""Replication flow control (thesis 3.5, 10.2): progress states, in-flight window,
batching by bytes, recovery from lost messages, and the order of sends and saves."""

from __future__ import annotations

import random

from nodehost.raft import MemoryLogReader, Peer, RaftConfig
from nodehost.raft.progress import ProgressState
from protos import raft_pb2 as pb

from .network import Network


def replicates_to(net: Network, rid: int) -> list[str]:
    assert net.trace is not None
    return [line for line in net.trace if line.startswith(f"1->{rid} REPLICATE ")]


def test_a_new_leader_probes_then_streams() -> None:
    net = Network.of(3, seed=1)
    net.step(1, pb.Message(type=pb.ELECTION))
    net.stabilize()
    pr = net.peer(1).raft.progress[2]
    assert pr.state is ProgressState.REPLICATE
    assert pr.match == net.peer(1).raft.log.last_index()


def test_many_entries_travel_in_one_message() -> None:
    net = Network.of(3, seed=2, trace=True)
    net.elect(1)
    assert net.trace is not None
    net.trace.clear()
    net.peer(1).propose([pb.Entry(key=100 + i, cmd=b"e%d" % i) for i in range(64)])
    net.stabilize()
    sent = [line for line in replicates_to(net, 2) if "'e" in line]
    assert len(sent) == 1
    assert sent[0].count("'e") == 64


def test_messages_are_cut_at_max_replicate_bytes() -> None:
    # 40-byte commands cost 64 bytes each with the per-entry overhead: two fit in 130.
    net = Network.of(3, seed=3, max_replicate_bytes=130, trace=True)
    net.elect(1)
    assert net.trace is not None
    net.trace.clear()
    net.peer(1).propose([pb.Entry(key=100 + i, cmd=b"%040d" % i) for i in range(10)])
    net.stabilize()
    sent = [line for line in replicates_to(net, 2) if "'0" in line]
    assert len(sent) == 5
    assert all(line.count("'0") == 2 for line in sent)
    assert net.applied(2) == net.peer(1).raft.log.last_index()


def test_the_in_flight_window_bounds_unacknowledged_messages() -> None:
    net = Network.of(3, seed=4, max_inflight=2, trace=True)
    net.elect(1)
    net.filters.append(lambda m: m.type == pb.REPLICATE_RESP and m.from_id == 2)
    assert net.trace is not None
    net.trace.clear()
    for i in range(6):
        net.propose(1, b"p%d" % i)
        net.stabilize()
    with_entries = [line for line in replicates_to(net, 2) if "'p" in line]
    assert len(with_entries) == 2
    pr = net.peer(1).raft.progress[2]
    assert pr.is_paused()
    # Replica 3 keeps up: the window is per follower.
    assert net.applied(3) == net.peer(1).raft.log.last_index()
    net.filters.clear()
    net.tick(ticks=3)
    assert net.applied(2) == net.peer(1).raft.log.last_index()


def test_a_lost_replicate_is_recovered_through_a_rejection_and_a_probe() -> None:
    net = Network.of(3, seed=5, trace=True)
    net.elect(1)
    dropped: list[int] = []

    def drop_first(m: pb.Message) -> bool:
        if m.type == pb.REPLICATE and m.to == 2 and m.entries and not dropped:
            dropped.append(m.entries[0].index)
            return True
        return False

    net.filters.append(drop_first)
    net.propose(1, b"lost")
    net.stabilize()
    net.propose(1, b"next")
    net.stabilize()
    assert net.trace is not None
    assert any(line.startswith("2->1 REPLICATE_RESP") and "reject" in line for line in net.trace)
    assert net.applied(2) == net.peer(1).raft.log.last_index()


def test_the_last_lost_replicate_is_resent_after_a_heartbeat() -> None:
    net = Network.of(3, seed=6)
    net.elect(1)
    net.filters.append(lambda m: m.type == pb.REPLICATE and m.to == 2 and bool(m.entries))
    net.propose(1, b"only")
    net.stabilize()
    net.filters.clear()
    assert net.applied(2) < net.peer(1).raft.log.last_index()
    net.tick(ticks=2)
    assert net.applied(2) == net.peer(1).raft.log.last_index()


def test_an_unreachable_follower_goes_back_to_probing() -> None:
    net = Network.of(3, seed=7)
    net.elect(1)
    assert net.peer(1).raft.progress[2].state is ProgressState.REPLICATE
    net.peer(1).report_unreachable(2)
    assert net.peer(1).raft.progress[2].state is ProgressState.PROBE


def test_10_2_1_the_leader_sends_before_it_saves_and_counts_itself_after() -> None:
    log = MemoryLogReader()
    peer = Peer(RaftConfig(shard_id=1, replica_id=1), log, random.Random(1), {1: "a", 2: "b"})
    u = peer.get_update()
    log.append(u.entries)
    assert u.state is not None
    log.set_state(u.state)
    peer.commit_update(u)
    peer.step(pb.Message(type=pb.ELECTION))
    u = peer.get_update()
    assert [m.type for m in u.messages] == [pb.REQUEST_VOTE]  # only after the vote is saved
    assert u.replicate == []
    log.set_state(u.state)  # type: ignore[arg-type]
    peer.commit_update(u)
    peer.step(pb.Message(type=pb.REQUEST_VOTE_RESP, from_id=2, to=1, term=2))
    u = peer.get_update()
    # The no-op goes out in `replicate`, to be sent while it is being saved.
    assert [m.type for m in u.replicate] == [pb.REPLICATE]
    assert u.entries and u.entries[-1].index == 3
    # Replica 2 acknowledges it before our own save finished: one vote of two.
    peer.step(pb.Message(type=pb.REPLICATE_RESP, from_id=2, to=1, term=2, log_index=3))
    assert peer.committed == 2
    log.append(u.entries)
    peer.commit_update(u)
    assert peer.committed == 3


def test_a_single_voter_commits_only_what_it_saved() -> None:
    log = MemoryLogReader()
    peer = Peer(RaftConfig(shard_id=1, replica_id=1), log, random.Random(1), {1: "a"})
    for _ in range(3):
        u = peer.get_update()
        log.append(u.entries)
        if u.state is not None:
            log.set_state(u.state)
        peer.commit_update(u)
        peer.step(pb.Message(type=pb.ELECTION))
    assert peer.is_leader()
    while peer.has_update():
        u = peer.get_update()
        log.append(u.entries)
        if u.state is not None:
            log.set_state(u.state)
        peer.commit_update(u)
    last = peer.committed
    peer.propose([pb.Entry(key=1, cmd=b"x")])
    u = peer.get_update()
    assert u.committed == []
    assert u.must_sync
    log.append(u.entries)
    peer.commit_update(u)
    u = peer.get_update()
    assert [e.key for e in u.committed] == [1]
    assert peer.committed == last + 1
