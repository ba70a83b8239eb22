"""scripts/hostile_peer.py against a live cluster of separate processes over real gRPC
(three example-kvstore nodes, three shards), as an operator would run it.

The script must refuse nothing it should not and see every hostile input refused
(it counts the nodes' refusals), every shard committing during and after the attack,
every acknowledged write read back from every node, and equal state hashes. The test
then checks the cluster itself once more, independently of the script.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from kvstore_cluster import REPO, Cluster

SHARDS = 3


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path, SHARDS=str(SHARDS), RTT_MS="20", LOG_LEVEL="warning")
    try:
        c.start()
        yield c
    finally:
        c.stop_all()


def run_script(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "hostile_peer.py"), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.integration
def test_hostile_frames_against_a_live_cluster_stop_nothing(cluster: Cluster) -> None:
    nodes = cluster.running()
    done = run_script(
        "--raft",
        ",".join(n.raft_addr for n in nodes),
        "--http",
        ",".join(f"http://{n.http_addr}" for n in nodes),
        "--rounds",
        "2",
    )
    print(done.stdout)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert "OK: every hostile input was refused" in done.stdout
    sent = int(done.stdout.split("sent ", 1)[1].split()[0])
    assert sent > 1000
    # Independently of the script: every node serves, every shard agrees.
    for node in nodes:
        assert node.alive()
        assert node.put(f"after-{node.node_id}", node.node_id).status == 200
    for reader in nodes:
        for writer in nodes:
            assert reader.get(f"after-{writer.node_id}").json() == writer.node_id
    cluster.wait_converged()
    for node in nodes:
        for shard in node.cluster()["shards"]:
            assert shard["running"] and shard["failed"] is None


def test_bad_arguments_exit_2() -> None:
    done = run_script("--raft", "nowhere", timeout=60)
    assert done.returncode == 2 and "host:port" in done.stderr
