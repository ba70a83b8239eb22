"""A failure inside one replica stops that replica only.

The fault is injected by wrapping one replica's core (a test-only wrapper handed in,
as the style guide asks for mutants): its step, its update or its commit raises, or
its update breaks a rule of the log store. Each time: that replica stops with its
reason (system event, metric, get_node_host_info), its pending requests fail at once
with ShardClosed naming the reason, and every other replica, on this host and the
others, goes on. Only a failing log store stops the whole host.

On simulated time (simcluster.py): what is tested is who stops and who goes on, not
when; each wait runs the cluster.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from nodehost import FailureInfo, ISystemEventListener, ShardClosed
from nodehost.raft import Peer, Update
from protos import raft_pb2 as pb
from tests.host.cluster import encode
from tests.host.simcluster import SimCluster, SimHost


class FaultyPeer:
    """Delegates to a real Peer; once armed, `fail_in` raises (or corrupts the update)."""

    def __init__(self, peer: Peer, fail_in: str) -> None:
        self._peer = peer
        self.fail_in = fail_in
        self.armed = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._peer, name)

    def _fire(self, where: str) -> None:
        if self.armed.is_set() and self.fail_in == where:
            raise RuntimeError(f"injected fault in {where}")

    def step(self, m: pb.Message) -> None:
        self._fire("step")
        self._peer.step(m)

    def get_update(self) -> Update:
        update = self._peer.get_update()
        self._fire("get_update")
        if self.armed.is_set() and self.fail_in == "log" and update.entries:
            # Copies, leaving a gap: the core's own entries stay as they are.
            bad = []
            for e in update.entries:
                copy = pb.Entry()
                copy.CopyFrom(e)
                copy.index += 10
                bad.append(copy)
            update.entries = bad
        return update

    def commit_update(self, update: Update) -> None:
        self._fire("commit_update")
        self._peer.commit_update(update)


class Failures(ISystemEventListener):
    def __init__(self) -> None:
        self.seen: list[FailureInfo] = []
        self.lock = threading.Lock()

    def node_failed(self, info: FailureInfo) -> None:
        with self.lock:
            self.seen.append(info)


def _wrap(host: SimHost, shard_id: int, fail_in: str) -> FaultyPeer:
    engine = host._engine
    assert engine is not None
    node = engine.nodes[shard_id]

    def swap() -> FaultyPeer:
        faulty = FaultyPeer(node.loop.peer, fail_in)
        node.loop.peer = faulty  # type: ignore[assignment]
        return faulty

    return engine.call(swap)


def _start(tmp_path: Path, failures: Failures) -> SimCluster:
    cluster = SimCluster(tmp_path, enable_metrics=True, system_event_listener=failures)
    for shard in (1, 2):
        cluster.start_shard(shard)
    return cluster


def _failed(host: SimHost, shard_id: int) -> str | None:
    for s in host.get_node_host_info().shard_info_list:
        if s.shard_id == shard_id:
            return s.failed
    return None


def _still_serves(cluster: SimCluster, host: SimHost, shards: list[int], key: str) -> None:
    """A write to each shard commits through `host` and reaches every replica."""
    for shard in shards:
        cluster.propose_retrying(host, shard, encode("put", key, shard))
        for _, h in cluster.live():
            if h._engine is not None and shard in h._engine.nodes:
                cluster.wait_for(
                    lambda h=h, s=shard: h.stale_read(s, key) == s, what=f"{key} on shard {shard}"
                )


@pytest.mark.parametrize("fail_in", ["step", "get_update", "commit_update"])
def test_a_replica_whose_core_raises_stops_alone(tmp_path: Path, fail_in: str) -> None:
    failures = Failures()
    cluster = _start(tmp_path, failures)
    try:
        leader = cluster.leader(1)
        # A follower: its core steps heartbeats, makes and commits updates all the time.
        victim = next(rid for rid in cluster.addresses if rid != leader)
        host = cluster.host(victim)
        faulty = _wrap(host, 1, fail_in)
        rs = host.read_index(1, timeout=30)  # pending when the fault strikes
        faulty.armed.set()
        cluster.wait_for(lambda: _failed(host, 1), what="the replica to fail")
        reason = _failed(host, 1)
        assert reason is not None and f"injected fault in {fail_in}" in reason
        outcome = cluster.wait(rs, 5)  # completed at once, not after its 30 s timeout
        assert outcome.terminated() and "injected fault" in outcome.reason
        with pytest.raises(ShardClosed, match="injected fault"):
            host.sync_read(1, "x", timeout=2)
        cluster.wait_for(lambda: failures.seen, what="the node_failed event")
        assert failures.seen[0].shard_id == 1 and failures.seen[0].replica_id == victim
        assert "injected fault" in failures.seen[0].reason
        metrics = host.write_health_metrics().decode()
        assert 'nodehost_replica_failures_total{shard="1"} 1.0' in metrics
        # The host, its other replica, and shard 1's other replicas go on.
        assert host._engine is not None and host._engine.fatal is None
        _still_serves(cluster, host, [2], "after")
        cluster.propose_retrying(cluster.host(leader), 1, encode("put", "after", 1))
    finally:
        cluster.close()


def test_a_replica_whose_update_the_log_refuses_stops_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    failures = Failures()
    cluster = SimCluster(tmp_path, enable_metrics=True, system_event_listener=failures)
    try:
        # Shards 1 and 2 have one replica each, on host 1: each always leads, so a
        # proposal to each appends in the same pass and the store sees one write with
        # the good update and the bad one. Shard 3 spans every host.
        cluster.start_shard(1, members=[1])
        cluster.start_shard(2, members=[1])
        cluster.start_shard(3)
        host = cluster.host(1)
        for shard in (1, 2):
            cluster.propose_retrying(host, shard, encode("put", "warm", shard))
        faulty = _wrap(host, 1, "log")
        faulty.armed.set()
        engine = host._engine
        assert engine is not None
        s1, s2 = host.get_noop_session(1), host.get_noop_session(2)
        with caplog.at_level(logging.WARNING, logger="nodehost.engine"):
            # Proposed from the loop, between two passes: both go into the next one.
            good, bad = engine.call(
                lambda: (
                    host.propose(s2, encode("put", "good", 2), 10),
                    host.propose(s1, encode("put", "bad", 1), 10),
                )
            )
            assert cluster.wait(good, 10).completed()
            outcome = cluster.wait(bad, 10)
        assert outcome.terminated() and "InvalidRequestError" in outcome.reason
        assert "refused a write of 2 replicas" in caplog.text
        reason = _failed(host, 1)
        assert reason is not None and "saving its update" in reason
        assert engine.fatal is None
        assert host.stale_read(2, "good") == 2
        _still_serves(cluster, host, [2, 3], "after")
        cluster.wait_for(lambda: failures.seen, what="the node_failed event")
        assert [(f.shard_id, f.replica_id) for f in failures.seen] == [(1, 1)]
    finally:
        cluster.close()


def test_a_failed_replica_starts_again_and_catches_up(tmp_path: Path) -> None:
    failures = Failures()
    cluster = _start(tmp_path, failures)
    try:
        leader = cluster.leader(1)
        victim = next(rid for rid in cluster.addresses if rid != leader)
        host = cluster.host(victim)
        _wrap(host, 1, "step").armed.set()
        cluster.wait_for(lambda: _failed(host, 1), what="the replica to fail")
        for i in range(5):
            cluster.propose_retrying(cluster.host(leader), 1, encode("put", f"missed{i}", i))
        host.stop_shard(1)
        cluster.start_replica(victim, 1, {}, False)
        cluster.wait_for(lambda: host.stale_read(1, "missed4") == 4, what="the restarted replica")
        assert _failed(host, 1) is None
        hashes = {h.get_state_hash(1) for _, h in cluster.live()}
        cluster.wait_for(
            lambda: len({h.get_state_hash(1) for _, h in cluster.live()}) == 1,
            what="equal state hashes",
        )
        assert hashes
    finally:
        cluster.close()
