"""Snapshots: automatic, requested, exported; compaction; catch-up by streaming.

On simulated time (simcluster.py), but for the last test, where a busy apply thread is
the point."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from nodehost import Rejected, SnapshotOption
from statemachine import Entry, Result
from tests.host.cluster import KV, Cluster, encode, propose_retrying, wait_for
from tests.host.simcluster import SimCluster


def write(cluster: SimCluster, rid: int, n: int, prefix: str = "k") -> None:
    host = cluster.host(rid)
    for i in range(n):
        cluster.propose_retrying(host, 1, encode("put", f"{prefix}{i}", i))


def test_automatic_snapshots_compact_the_log(sim_cluster: SimCluster) -> None:
    cluster = sim_cluster
    cluster.start_shard(1, snapshot_entries=10, compaction_overhead=5)
    leader = cluster.leader(1)
    write(cluster, leader, 40)
    host = cluster.host(leader)
    info = host.get_node_host_info()
    assert info.shard_info_list[0].applied_index >= 40
    node = host._engine.nodes[1]  # type: ignore[union-attr]
    reader = node.loop.log_reader
    cluster.wait_for(lambda: reader.snapshot().index >= 30, what="a snapshot at >= 30")
    # The log behind the snapshot, minus the overhead, is gone from memory and disk.
    assert reader.first_index() > 20
    assert reader.first_index() <= reader.snapshot().index


def test_requested_and_exported_snapshots(sim_cluster: SimCluster, tmp_path: Path) -> None:
    cluster = sim_cluster
    cluster.start_shard(1)
    leader = cluster.leader(1)
    write(cluster, leader, 5)
    host = cluster.host(leader)
    index = host.sync_request_snapshot(1, None, timeout=5)
    assert index >= 5
    with pytest.raises(Rejected):  # nothing new since
        host.sync_request_snapshot(1, None, timeout=5)
    export = tmp_path / "export"
    exported = host.sync_request_snapshot(
        1, SnapshotOption(exported=True, export_path=str(export)), timeout=5
    )
    assert exported == index
    assert any(export.rglob("*")), "the exported snapshot has files"


def test_lagging_replica_catches_up_by_snapshot(sim_cluster: SimCluster) -> None:
    cluster = sim_cluster
    cluster.start_shard(1, snapshot_entries=20, compaction_overhead=2)
    leader = cluster.leader(1)
    lagging = next(rid for rid in cluster.addresses if rid != leader)
    cluster.stop(lagging)
    writer = next(rid for rid, _ in cluster.live())
    write(cluster, writer, 120)
    # The leader's log was compacted past what the stopped replica has.
    lead = cluster.host(cluster.leader(1))
    node = lead._engine.nodes[1]  # type: ignore[union-attr]
    cluster.wait_for(
        lambda: node.loop.log_reader.first_index() > 50, what="compaction on the leader"
    )
    cluster.restart(lagging)
    cluster.start_replica(lagging, 1, {}, False)
    host = cluster.host(lagging)
    cluster.wait_for(lambda: host.stale_read(1, "k119") == 119, timeout=20, what="catch-up")
    assert host.sync_read(1, "__all__", 5) == {f"k{i}": i for i in range(120)}


def test_restart_recovers_from_snapshot_then_replays_the_tail(sim_cluster: SimCluster) -> None:
    cluster = sim_cluster
    applied: dict[int, list[int]] = {}

    class Recording(KV):
        def __init__(self, shard_id: int, replica_id: int) -> None:
            super().__init__()
            applied[replica_id] = self.applied

    cluster.start_shard(1, Recording, snapshot_entries=10, compaction_overhead=5)
    leader = cluster.leader(1)
    write(cluster, leader, 25)
    rid = next(r for r in cluster.addresses if r != leader)
    cluster.wait_for(lambda: cluster.host(rid).stale_read(1, "k24") == 24, what="replicated")
    cluster.restart(rid)
    cluster.start_replica(rid, 1, {}, False, Recording, snapshot_entries=10, compaction_overhead=5)
    host = cluster.host(rid)
    cluster.wait_for(lambda: host.stale_read(1, "k24") == 24, what="recovered")
    # Only the entries after the latest snapshot were applied again, in log order.
    assert applied[rid] == sorted(applied[rid])
    assert 0 < len(applied[rid]) <= 10
    assert host.sync_read(1, "__all__", 5) == {f"k{i}": i for i in range(25)}


class Gate(KV):
    """A KV whose "block" command holds its apply worker until the test opens the gate."""

    started = threading.Event()
    gate = threading.Event()

    def update(self, entry: Entry) -> Result:
        if entry.cmd == b"block":
            Gate.started.set()
            Gate.gate.wait(30)
            return Result(0)
        return super().update(entry)


def test_a_snapshot_request_times_out_while_its_apply_worker_is_busy(tmp_path: Path) -> None:
    # Only the engine's tick times a request out; it must hear of this one, although
    # snapshots bypass the Raft core and the replica may sit idle.
    cluster = Cluster(tmp_path, size=1)
    Gate.started.clear()
    Gate.gate.clear()
    try:
        host = cluster.host(1)
        cluster.start_shard(1)
        cluster.start_shard(3, create=Gate)
        engine = host._engine
        assert engine is not None and engine.apply_worker_for(1) == engine.apply_worker_for(3)
        propose_retrying(host, 1, encode("put", "k", 1))
        cluster.leader(3)
        blocked = host.propose(host.get_noop_session(3), b"block", timeout=30)
        assert Gate.started.wait(10)
        ticked = engine._tick + 2  # shard 1 has had no request for a tick or more
        wait_for(lambda: engine._tick >= ticked, what="two engine ticks")
        rs = host.request_snapshot(1, None, timeout=0.2)
        wait_for(rs.done, timeout=10, what="the snapshot request to time out")
        assert rs.result().timeout()
        Gate.gate.set()
        assert blocked.wait(10).completed()
    finally:
        Gate.gate.set()
        cluster.close()
