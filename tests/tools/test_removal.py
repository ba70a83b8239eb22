"""NodeHost.sync_remove_data: Dragonboat's SyncRemoveData on a real NodeHost."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodehost import (
    Config,
    InvalidOperation,
    NodeHost,
    NodeHostConfig,
    ReplicaRemoved,
    ShardNotStopped,
)
from tests.host.cluster import KV, free_ports


def test_sync_remove_data_refuses_a_running_replica_then_removes_for_good(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    address = f"127.0.0.1:{port}"
    config = NodeHostConfig(node_host_dir=str(tmp_path), raft_address=address, rtt_millisecond=20)
    replica = Config(shard_id=1, replica_id=1)
    with NodeHost(config) as nh:
        nh.start_replica({1: address}, False, KV, replica)
        with pytest.raises(ShardNotStopped, match="running"):
            nh.sync_remove_data(1, 1, timeout=1)
        with pytest.raises(InvalidOperation, match="timeout"):
            nh.sync_remove_data(1, 1, timeout=0)
        nh.stop_shard(1)
        assert nh.has_node_info(1, 1)
        nh.sync_remove_data(1, 1, timeout=5)
        assert not nh.has_node_info(1, 1)
        assert not (tmp_path / "snapshots" / "shard-1-replica-1").exists()
        with pytest.raises(ReplicaRemoved):
            nh.start_replica({1: address}, False, KV, replica)
