"""One example-kvstore process: no configuration beyond free ports, keys over 3 shards,
and a restart that finds every key again."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from kvstore_cluster import Node

from examples.kvstore.main import run
from examples.kvstore.service import shard_for

pytestmark = pytest.mark.integration


def test_one_node_starts_bare_spreads_keys_and_restarts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    node = Node(1, tmp_path, {"RTT_MS": "25"})
    for name in ("NODE_ID", "STATE_DIR"):  # the defaults: node 1, ./kvstore-data/1
        del node.env[name]
    node.argv = ["--shards", "3"]
    node.start()
    try:
        node.wait_healthy()
        identity = node.dir / "kvstore-data" / "1" / "kvstore.json"
        assert json.loads(identity.read_text()) == {
            "node_id": 1,
            "store": "memory",
            "shards": 3,
            "raft_addr": node.raft_addr,
            "peers": f"1@{node.raft_addr}",
        }

        keys = [f"key-{i}" for i in range(30)]
        for i, key in enumerate(keys):
            assert node.put(key, {"i": i}).status == 200
        view = node.cluster()
        assert [s["shard_id"] for s in view["shards"]] == [1, 2, 3]
        assert all(s["is_leader"] and s["members"] == {"1": node.raft_addr} for s in view["shards"])
        used = {shard_for(k, 3) for k in keys}
        assert used == {1, 2, 3}, "30 keys land on every shard"

        assert node.terminate() == 0
        node.start()
        node.wait_healthy()
        for i, key in enumerate(keys):
            assert node.get(key, "?timeout=30").json() == {"i": i}, key
        assert node.terminate(signum=signal.SIGINT) == 0, "Ctrl-C: a clean exit too"
        assert "Traceback" not in node.log()
    finally:
        if node.alive():
            node.terminate()

    # Started again over the same data with another shard count: refused, not misrouted.
    env = {**node.env, "STATE_DIR": str(node.dir / "kvstore-data" / "1")}
    assert run(["--shards", "2"], env) == 1
    assert "SHARDS=3" in caplog.text
