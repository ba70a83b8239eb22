"""A NodeHost that cannot open says why with a RaftError naming the setting, and
leaves its directory unlocked for the next try."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from nodehost import InvalidConfig, NodeHost, NodeHostConfig


def test_address_in_use_is_invalid_config(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        address = f"127.0.0.1:{busy.getsockname()[1]}"
        config = NodeHostConfig(node_host_dir=str(tmp_path / "nh"), raft_address=address)
        with pytest.raises(InvalidConfig, match="listen_address"):
            NodeHost(config)
    # The failed start released the directory: the same config starts once the port is free.
    NodeHost(config).close()


def test_damaged_log_store_is_invalid_config(tmp_path: Path) -> None:
    logdb = tmp_path / "nh" / "logdb"
    logdb.mkdir(parents=True)
    (logdb / "CURRENT").write_text("junk\n")
    (logdb / "MANIFEST-000001").write_text("junk\n")
    config = NodeHostConfig(node_host_dir=str(tmp_path / "nh"), raft_address="127.0.0.1:1")
    with pytest.raises(InvalidConfig, match="node_host_dir"):
        NodeHost(config)
    assert (logdb / "CURRENT").read_text() == "junk\n"  # reported, not repaired
