"""Restart: a closed NodeHost comes back with everything; bad restarts are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodehost import (
    DirectoryLocked,
    InvalidConfig,
    InvalidShardSettings,
    NodeHost,
    NodeHostConfig,
    ReplicaRemoved,
    ShardAlreadyExists,
    ShardNotStopped,
)
from tests.host.cluster import Cluster, ConcurrentKV, encode
from tests.host.simcluster import SimCluster


def test_whole_cluster_restarts_with_nothing_lost(sim_cluster: SimCluster) -> None:
    cluster = sim_cluster
    cluster.start_shard(1, snapshot_entries=7, compaction_overhead=2)
    cluster.start_shard(2)
    for i in range(20):
        cluster.propose_retrying(cluster.host(1 + i % 3), 1, encode("put", f"a{i}", i))
        cluster.propose_retrying(cluster.host(1 + i % 3), 2, encode("put", f"b{i}", i))
    for rid in list(cluster.addresses):
        cluster.restart(rid)
    for rid in cluster.addresses:
        cluster.start_replica(rid, 1, {}, False, snapshot_entries=7, compaction_overhead=2)
        cluster.start_replica(rid, 2, {}, False)
    for _, host in cluster.live():
        assert host.sync_read(1, "__all__", 10) == {f"a{i}": i for i in range(20)}
        assert host.sync_read(2, "__all__", 10) == {f"b{i}": i for i in range(20)}
    hashes = {host.get_state_hash(1) for _, host in cluster.live()}
    assert len(hashes) == 1
    info = cluster.host(1).get_node_host_info()
    assert sorted(info.log_info) == [(1, 1), (2, 1)]


def test_restart_with_same_members_is_fine_other_settings_refused(sim_cluster: SimCluster) -> None:
    cluster = sim_cluster
    cluster.start_shard(1)
    cluster.leader(1)
    members = dict(cluster.addresses)
    cluster.restart(1)
    with pytest.raises(InvalidShardSettings, match="initial_members"):
        cluster.start_replica(1, 1, {1: members[1], 2: members[2]}, False)
    with pytest.raises(InvalidShardSettings, match="join"):
        cluster.start_replica(1, 1, {}, True)
    with pytest.raises(InvalidShardSettings, match="state machine type"):
        cluster.start_replica(1, 1, {}, False, ConcurrentKV, "concurrent")
    cluster.start_replica(1, 1, members, False)
    with pytest.raises(ShardAlreadyExists):
        cluster.start_replica(1, 1, members, False)
    assert cluster.host(1).has_node_info(1, 1)
    assert not cluster.host(1).has_node_info(9, 1)


def test_new_replica_needs_members_or_join(sim_cluster: SimCluster) -> None:
    cluster = sim_cluster
    with pytest.raises(InvalidShardSettings, match="initial_members"):
        cluster.start_replica(1, 5, {}, False)
    with pytest.raises(InvalidShardSettings, match="not among"):
        cluster.start_replica(1, 1, {2: cluster.addresses[2]}, False)


def test_two_nodehosts_on_one_directory(cluster: Cluster) -> None:
    host_dir = cluster.root / "nh1"
    with pytest.raises(DirectoryLocked):
        NodeHost(NodeHostConfig(node_host_dir=str(host_dir), raft_address="127.0.0.1:1"))


def test_changed_address_is_refused(cluster: Cluster) -> None:
    cluster.stop(1)
    with pytest.raises(InvalidConfig, match="raft_address"):
        NodeHost(
            NodeHostConfig(node_host_dir=str(cluster.root / "nh1"), raft_address="127.0.0.1:2")
        )


def test_damaged_directory_gives_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "nh").mkdir()
    (tmp_path / "nh" / "nodehost.json").write_text("{not json")
    with pytest.raises(InvalidConfig, match="damaged"):
        NodeHost(NodeHostConfig(node_host_dir=str(tmp_path / "nh"), raft_address="127.0.0.1:1"))


def test_removed_data_cannot_start_again(sim_cluster: SimCluster) -> None:
    cluster = sim_cluster
    cluster.start_shard(1)
    host = cluster.host(cluster.leader(1))
    other = next(rid for rid in cluster.addresses if cluster.hosts[rid] is not host)
    with pytest.raises(ShardNotStopped):
        cluster.host(other).remove_data(1, other)
    host.sync_request_delete_replica(1, other, 0, 5)
    cluster.host(other).stop_shard(1)
    cluster.host(other).remove_data(1, other)
    with pytest.raises(ReplicaRemoved):
        cluster.start_replica(other, 1, {}, False)
    cluster.wait_for(lambda: host.sync_read(1, "x", 5) is None, what="shard serves without it")


def test_a_joiner_stopped_before_it_heard_from_the_leader_restarts(sim_cluster: SimCluster) -> None:
    cluster = sim_cluster
    """Started with join=True, closed before the shard added it (so its log is empty),
    then restarted with the restart arguments: it still waits to be reached and catches
    up once added, instead of failing for want of initial members."""
    cluster.start_shard(1, members=[1, 2, 3])
    leader = cluster.host(cluster.leader(1))
    cluster.propose_retrying(leader, 1, encode("put", "before", 1))
    cluster.add_host(4)
    cluster.start_replica(4, 1, {}, True)
    newcomer = cluster.restart(4)
    cluster.start_replica(4, 1, {}, False)  # as a restart: the record says it joined
    leader.sync_request_add_replica(1, 4, cluster.addresses[4], 0, timeout=5)
    cluster.wait_for(lambda: newcomer.stale_read(1, "before") == 1, what="replica 4 caught up")
    assert set(leader.sync_get_shard_membership(1, 5).nodes) == {1, 2, 3, 4}
