"""Quiesce: an idle shard stops heartbeats and elections, and wakes on any activity."""

from __future__ import annotations

from .network import Network

ELECTION = 10
IDLE = 10 * ELECTION + 1


def quiet_cluster(seed: int) -> Network:
    net = Network.of(3, seed=seed, quiesce=True, trace=True)
    net.elect(1)
    net.tick(ticks=IDLE)
    return net


def sent(net: Network) -> list[str]:
    assert net.trace is not None
    return [line for line in net.trace if "->" in line]


def test_an_idle_shard_goes_quiet() -> None:
    net = quiet_cluster(seed=1)
    assert all(net.peer(r).quiesced for r in (1, 2, 3))
    assert net.trace is not None
    assert any(line.startswith("1->2 QUIESCE") for line in net.trace)
    net.trace.clear()
    net.tick(ticks=5 * ELECTION)
    assert sent(net) == []
    assert net.peer(1).is_leader()


def test_a_quiesced_tick_reports_no_work() -> None:
    net = quiet_cluster(seed=2)
    assert net.peer(2).tick() is False
    assert not net.peer(2).has_update()


def test_a_proposal_wakes_the_shard() -> None:
    net = quiet_cluster(seed=3)
    key = net.propose(1, b"wake")
    net.stabilize()
    assert key in net.acked
    assert not any(net.peer(r).quiesced for r in (1, 2, 3))
    assert net.trace is not None
    net.trace.clear()
    net.tick(ticks=3)
    assert any(" HEARTBEAT " in line for line in sent(net))


def test_a_proposal_on_a_follower_wakes_it_and_the_leader() -> None:
    net = quiet_cluster(seed=4)
    key = net.propose(3, b"wake")
    net.stabilize()
    assert key in net.acked
    assert not net.peer(1).quiesced and not net.peer(3).quiesced


def test_a_read_wakes_the_shard() -> None:
    net = quiet_cluster(seed=5)
    ctx = net.read(2)
    net.stabilize()
    assert net.read_served(2, ctx)
    assert not net.peer(1).quiesced


def test_straggling_heartbeats_do_not_wake_a_replica_that_just_quiesced() -> None:
    net = Network.of(3, seed=6, quiesce=True)
    net.elect(1)
    net.tick(ticks=IDLE)
    assert net.peer(2).quiesced
    # A heartbeat sent before the leader quiesced arrives late.
    from protos import raft_pb2 as pb

    net.step(2, pb.Message(type=pb.HEARTBEAT, from_id=1, to=2, term=net.peer(1).term))
    assert net.peer(2).quiesced
    # Much later, a heartbeat means the leader is awake: follow it.
    for _ in range(ELECTION):
        net.peer(2).tick()
    net.step(2, pb.Message(type=pb.HEARTBEAT, from_id=1, to=2, term=net.peer(1).term))
    assert not net.peer(2).quiesced


def test_without_quiesce_the_leader_keeps_heartbeating() -> None:
    net = Network.of(3, seed=7, trace=True)
    net.elect(1)
    net.tick(ticks=IDLE)
    assert net.trace is not None
    net.trace.clear()
    net.tick(ticks=5)
    assert len([line for line in sent(net) if " HEARTBEAT " in line]) == 10


def test_a_replica_whose_clock_stopped_wakes_on_a_stream_of_heartbeats() -> None:
    # An engine may stop ticking quiesced replicas: then the straggler window never
    # ends by time, but more heartbeats than one election timeout's worth wake it.
    from protos import raft_pb2 as pb

    net = Network.of(3, seed=8, quiesce=True)
    net.elect(1)
    net.tick(ticks=IDLE)
    assert net.peer(2).quiesced
    beat = pb.Message(type=pb.HEARTBEAT, from_id=1, to=2, term=net.peer(1).term)
    for _ in range(ELECTION):
        net.step(2, beat)
    assert net.peer(2).quiesced
    net.step(2, beat)
    net.step(2, beat)
    assert not net.peer(2).quiesced


def test_a_replica_that_knows_no_leader_never_quiesces() -> None:
    """It must keep its election timer: a shard whose replicas all quiesced without a
    leader would stay leaderless until a client happened to wake it."""
    net = Network.of(3, seed=7, quiesce=True, pre_vote=True)
    net.elect(1)
    net.isolate(1)
    net.crash(1)
    net.partition([2], [3])  # no one can win, so no one learns of a leader
    net.tick(ticks=3 * IDLE)
    for rid in (2, 3):
        assert net.peer(rid).raft.leader_id == 0
        assert not net.peer(rid).quiesced
    net.heal()
    net.tick(ticks=4 * ELECTION)
    assert net.leader() in (2, 3)
