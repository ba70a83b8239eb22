"""Bad settings fail where they are made, naming the field."""

from __future__ import annotations

import pytest

from nodehost.config import CompressionType, Config, NodeHostConfig
from nodehost.errors import InvalidConfig


def test_defaults_are_valid(tmp_path: object) -> None:
    nhc = NodeHostConfig(node_host_dir="d", raft_address="localhost:63001")
    assert nhc.listen_address == "localhost:63001"
    assert nhc.rtt_millisecond == 200
    c = Config(shard_id=128, replica_id=1)
    assert c.election_rtt == 10 and c.snapshot_compression is CompressionType.NONE


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"node_host_dir": ""}, "node_host_dir"),
        ({"raft_address": "nohost"}, "raft_address"),
        ({"raft_address": "h:0"}, "raft_address"),
        ({"raft_address": "h:70000"}, "raft_address"),
        ({"raft_address": "[::1:80"}, "raft_address"),
        ({"listen_address": "x y:1"}, "listen_address"),
        ({"rtt_millisecond": 0}, "rtt_millisecond"),
        ({"rtt_millisecond": 1.5}, "rtt_millisecond"),
        ({"deployment_id": -1}, "deployment_id"),
        ({"max_send_queue_size": -5}, "max_send_queue_size"),
        ({"apply_workers": 0}, "apply_workers"),
        ({"mutual_tls": True}, "ca_file"),
        ({"fsync": "no"}, "fsync"),
        ({"transport": "udp"}, "transport"),
    ],
)
def test_node_host_config_names_the_bad_field(kwargs: dict[str, object], field: str) -> None:
    base: dict[str, object] = {"node_host_dir": "d", "raft_address": "localhost:1"}
    base.update(kwargs)
    with pytest.raises(InvalidConfig, match=field):
        NodeHostConfig(**base)  # type: ignore[arg-type]


def test_ipv6_address_is_accepted() -> None:
    NodeHostConfig(node_host_dir="d", raft_address="[::1]:5000")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"shard_id": 0}, "shard_id"),
        ({"replica_id": 0}, "replica_id"),
        ({"replica_id": 2**64}, "replica_id"),
        ({"replica_id": True}, "replica_id"),
        ({"election_rtt": 0}, "election_rtt"),
        ({"heartbeat_rtt": 0}, "heartbeat_rtt"),
        ({"election_rtt": 2, "heartbeat_rtt": 1}, "election_rtt"),
        ({"snapshot_entries": -1}, "snapshot_entries"),
        ({"compaction_overhead": -1}, "compaction_overhead"),
        ({"max_in_mem_log_size": -1}, "max_in_mem_log_size"),
        ({"is_witness": True, "is_non_voting": True}, "is_witness"),
        ({"snapshot_compression": 9}, "snapshot_compression"),
    ],
)
def test_config_names_the_bad_field(kwargs: dict[str, object], field: str) -> None:
    base: dict[str, object] = {"shard_id": 1, "replica_id": 1}
    base.update(kwargs)
    with pytest.raises(InvalidConfig, match=field):
        Config(**base)  # type: ignore[arg-type]
