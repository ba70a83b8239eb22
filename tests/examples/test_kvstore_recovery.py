"""The README's quorum-loss runbook on an on-disk kvstore of two shards that snapshots
as it goes, with real processes: a three-node kvstore loses two nodes for good, the
survivor is recovered with the `nodehost` command (`--shard all`: both shards), and the
store grows back to three nodes with every key it held.

The README walk (test_readme.py) runs the runbook as the README shows it, on the
in-memory, one-shard kvstore, in CI; this long form runs with
`uv run pytest tests/examples/test_kvstore_recovery.py --run-slow`."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from kvstore_cluster import Cluster, wait_for

from tests.tools.hosts import run_nodehost

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KEYS = 60


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path, STORE="disk", SHARDS="2", SNAPSHOT_ENTRIES="20")
    for node in c.nodes.values():
        node.env["ADMIN_ADDRESS"] = f"unix:{node.dir / 'admin.sock'}"
    try:
        c.start()
        yield c
    finally:
        c.stop_all()


def ok(result: object) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)  # type: ignore[attr-defined]
    return str(result.stdout)  # type: ignore[attr-defined]


def test_a_kvstore_that_lost_two_of_three_nodes_is_back_to_three(cluster: Cluster) -> None:
    node1, node2, node3 = (cluster.nodes[i] for i in (1, 2, 3))
    values = {f"key-{i}": {"n": i} for i in range(KEYS)}
    for key, value in values.items():
        assert node1.put(key, value).status == 200
    cluster.wait_converged()

    # Nodes 2 and 3 are lost for good: killed, their disks gone.
    node2.kill()
    node3.kill()
    shutil.rmtree(node2.dir / "state")
    shutil.rmtree(node3.dir / "state")
    assert node1.put("no-quorum", 1, "?timeout=1").status == 503

    # 1. Stop everything that is left.
    assert node1.terminate() == 0
    data = str(node1.dir / "state" / "nodehost")
    # 2. Inspect the survivors; with several, the one with the newest log is chosen.
    report = json.loads(ok(run_nodehost("--format", "json", "inspect", data)))
    assert sorted(r["shard_id"] for r in report["replicas"]) == [1, 2]
    assert all(r["last_index"] >= r["commit"] for r in report["replicas"])
    # 3. Recover: the survivor becomes the only member of every shard.
    text = ok(run_nodehost("recover", data, "--shard", "all", "--members", f"1={node1.raft_addr}"))
    assert len(text.strip().splitlines()) == 2, text
    assert all(f"-> 1={node1.raft_addr} (term " in line for line in text.splitlines())
    # 4. Start it, with the flags it always had.
    node1.start()
    node1.wait_healthy()
    for key, value in values.items():
        reply = node1.get(key)
        assert (reply.status, reply.json()) == (200, value), key
    info = json.loads(
        ok(run_nodehost("--format", "json", "info", "--admin", f"unix:{node1.dir / 'admin.sock'}"))
    )
    for shard in info["shards"]:
        assert shard["membership"]["voters"] == {"1": node1.raft_addr}
        assert shard["membership"]["removed"] == [2, 3]
    # 5. Grow back to three: new nodes, new ids (2 and 3 never return).
    node4 = cluster.add_node(4, JOIN=node1.http_addr)
    node5 = cluster.add_node(5, JOIN=node1.http_addr)
    node4.start()
    node4.wait_healthy(timeout=120)
    node5.start()
    node5.wait_healthy(timeout=120)
    for node in (node4, node5):
        for key, value in values.items():
            reply = node.get(key)
            assert (reply.status, reply.json()) == (200, value), (node.node_id, key)
    assert node5.put("after-recovery", True).status == 200
    cluster.wait_converged()
    members = node4.cluster()["members"]
    assert sorted(int(m) for m in members) == [1, 4, 5]
    wait_for(
        "every node to see the write made after the recovery",
        lambda: all(
            n.get("after-recovery", "?stale=1").status == 200 for n in (node1, node4, node5)
        ),
        30,
    )
