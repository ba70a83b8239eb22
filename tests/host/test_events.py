"""Event listeners, logging and metrics."""

from __future__ import annotations

import threading
from pathlib import Path

from nodehost import IRaftEventListener, ISystemEventListener, LeaderInfo, NodeInfo, SnapshotInfo
from tests.host.cluster import Cluster, encode
from tests.host.simcluster import SimCluster


class Recorder(IRaftEventListener, ISystemEventListener):
    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []
        self.lock = threading.Lock()

    def _add(self, name: str, info: object) -> None:
        with self.lock:
            self.events.append((name, info))

    def names(self) -> set[str]:
        with self.lock:
            return {name for name, _ in self.events}

    def leader_updated(self, info: LeaderInfo) -> None:
        self._add("leader_updated", info)

    def node_ready(self, info: NodeInfo) -> None:
        self._add("node_ready", info)

    def node_unloaded(self, info: NodeInfo) -> None:
        self._add("node_unloaded", info)

    def membership_changed(self, info: NodeInfo) -> None:
        self._add("membership_changed", info)

    def snapshot_created(self, info: SnapshotInfo) -> None:
        self._add("snapshot_created", info)

    def log_compacted(self, info: object) -> None:
        self._add("log_compacted", info)


def test_listeners_hear_leaders_membership_and_snapshots(tmp_path: Path) -> None:
    recorder = Recorder()
    cluster = SimCluster(
        tmp_path,
        raft_event_listener=recorder,
        system_event_listener=recorder,
        enable_metrics=True,
    )
    try:
        cluster.start_shard(1, snapshot_entries=5, compaction_overhead=1)
        leader = cluster.leader(1)
        for i in range(12):
            cluster.propose_retrying(cluster.host(leader), 1, encode("put", f"k{i}", i))
        cluster.wait_for(
            lambda: (
                {
                    "leader_updated",
                    "node_ready",
                    "membership_changed",
                    "snapshot_created",
                    "log_compacted",
                }
                <= recorder.names()
            ),
            what="events",
        )
        infos = [i for n, i in recorder.events if n == "leader_updated"]
        assert any(isinstance(i, LeaderInfo) and i.leader_id == leader for i in infos)
        cluster.host(1).stop_shard(1)
        cluster.wait_for(lambda: "node_unloaded" in recorder.names(), what="unloaded")
        text = cluster.host(leader).write_health_metrics().decode()
        for name in (
            "nodehost_proposals_total",
            "nodehost_applied_entries_total",
            "nodehost_logdb_save_seconds",
            "nodehost_leader_changes_total",
            "nodehost_snapshots_total",
            "nodehost_transport_",
        ):
            assert name in text, name
    finally:
        cluster.close()


def test_metrics_off_renders_nothing(cluster: Cluster) -> None:
    assert b"nodehost_proposals" not in cluster.host(1).write_health_metrics()
