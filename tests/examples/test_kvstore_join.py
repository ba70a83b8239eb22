"""Joining, failing to join, being removed: every way a kvstore node can fail to start
or stop serving ends in one line that says what to do, and never costs the cluster
its quorum.

Real example-kvstore processes on free loopback ports. A one-node cluster is used on
purpose: there, a dead voting member would take the quorum with it (two voters, one
up), so "writes still succeed" proves that nothing voting was left behind.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kvstore_cluster import Cluster, Node, wait_for

pytestmark = pytest.mark.integration

FAST = {"RTT_MS": "25", "LOG_LEVEL": "info"}


@pytest.fixture
def one(tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path, size=1, **FAST)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop_all()


def wait_exit(node: Node, timeout: float = 60.0) -> int:
    assert node.proc is not None
    return node.proc.wait(timeout)


def error_lines(node: Node) -> list[str]:
    return [line for line in node.log().splitlines() if " ERROR " in line]


def join_requests(member: Node) -> float:
    """How many POST /join the member answered (its own metric)."""
    text = member.call("GET", "/metrics").body.decode()
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("kvstore_http_requests_total{") and 'route="/join"' in line
    )


def test_a_join_with_its_http_port_taken_asks_nothing_and_a_rerun_works(one: Cluster) -> None:
    first = one.nodes[1]
    newcomer = one.add_node(4, JOIN=first.http_addr)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", newcomer.http_port))
        busy.listen()
        newcomer.start()
        assert wait_exit(newcomer) == 1
    (line,) = error_lines(newcomer)
    assert f"HTTP address {newcomer.http_addr} is in use" in line
    assert "choose another --api" in line and "Traceback" not in newcomer.log()
    assert join_requests(first) == 0, "the cluster was never asked"
    assert first.put("k", 1).status == 200

    newcomer.start()  # the same command again, the port now free
    newcomer.wait_healthy()
    wait_for(
        "node 4 to be a voting member",
        lambda: (
            "4" in first.cluster()["members"] and "voting member of every shard" in newcomer.log()
        ),
        60,
    )
    assert newcomer.get("k", "?timeout=30").json() == 1


def test_a_raft_port_taken_is_found_before_any_data_is_written(tmp_path: Path) -> None:
    node = Node(1, tmp_path, FAST)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", node.raft_port))
        busy.listen()
        node.start()
        assert wait_exit(node) == 1
    (line,) = error_lines(node)
    assert f"Raft address {node.raft_addr} is in use" in line and "another --db" in line
    assert not (node.dir / "state").exists(), "nothing was created"


def test_a_joiner_that_dies_after_being_added_costs_no_quorum_and_a_rerun_finishes(
    one: Cluster,
) -> None:
    """The node asked to be added, then died before it ran: as if its process was
    killed right after POST /join. It is a non-voting member, so the one-node
    cluster keeps writing; the same command, run again, finishes the join."""
    first = one.nodes[1]
    newcomer = one.add_node(4, JOIN=first.http_addr)
    body = json.dumps({"id": 4, "addr": newcomer.raft_addr}).encode()
    added = first.call("POST", "/join", body)
    assert added.status == 200 and added.json()["voting"] is False, added
    for i in range(5):
        reply = first.put(f"while-4-is-down-{i}", i, "?timeout=5")
        assert reply.status == 200, reply

    newcomer.start()
    newcomer.wait_healthy()
    wait_for("node 4 to be promoted", lambda: "4" in first.cluster()["members"], 60)
    assert newcomer.get("while-4-is-down-4", "?timeout=30").json() == 4


def test_joining_a_one_node_cluster_never_stops_its_writes(one: Cluster) -> None:
    first = one.nodes[1]
    newcomer = one.add_node(4, JOIN=first.http_addr)
    for i in range(200):  # a log to catch up on
        assert first.put(f"before-{i}", i).status == 200
    newcomer.start()
    statuses = []
    deadline = time.monotonic() + 60
    while "voting member of every shard" not in newcomer.log():
        assert time.monotonic() < deadline, newcomer.log()
        statuses.append(first.put("during", len(statuses), "?timeout=5").status)
    assert set(statuses) == {200}, statuses
    assert newcomer.get("before-199", "?timeout=30").json() == 199


def test_a_removed_node_says_so_everywhere_and_cannot_come_back(one: Cluster) -> None:
    first = one.nodes[1]
    newcomer = one.add_node(4, JOIN=first.http_addr)
    newcomer.start()
    newcomer.wait_healthy()
    wait_for("node 4 to be promoted", lambda: "4" in first.cluster()["members"], 60)
    assert first.call("DELETE", "/cluster/4").status == 200

    def says_removed() -> bool:
        return newcomer.call("GET", "/healthz").status == 503

    wait_for("node 4 to report itself removed", says_removed, 30)
    health = newcomer.call("GET", "/healthz").json()
    assert health["status"] == "removed" and "can never serve again" in health["error"]
    for reply in (
        newcomer.get("k"),
        newcomer.get("k", "?stale=1"),
        newcomer.put("k", 1),
        newcomer.call("DELETE", "/cluster/1"),
    ):
        assert reply.status == 410, reply
        assert "node 4 was removed from the cluster" in reply.json()["error"]
        assert "delete" in reply.json()["error"] and "new --id" in reply.json()["error"]
    assert newcomer.cluster()["removed"] is True
    metrics = newcomer.call("GET", "/metrics").body.decode()
    assert "kvstore_node_removed 1.0" in metrics
    assert first.put("after", 1).status == 200

    # Started again, the same node stops at once (or, if its log did not say so yet,
    # reports it again); either way it never serves, and nothing is a traceback.
    assert newcomer.terminate() == 0
    newcomer.start()

    def settled() -> bool:
        if not newcomer.alive():
            return True
        return newcomer.call("GET", "/healthz").status == 503

    wait_for("the restarted removed node to refuse", settled, 60)
    if not newcomer.alive():
        assert newcomer.proc is not None and newcomer.proc.returncode == 1
        assert "was removed from the cluster" in error_lines(newcomer)[-1]
    assert "Traceback" not in newcomer.log()


def test_a_removed_id_asking_to_join_gets_the_fix(one: Cluster) -> None:
    first = one.nodes[1]
    ghost = one.add_node(5, JOIN=first.http_addr)
    body = json.dumps({"id": 5, "addr": ghost.raft_addr}).encode()
    assert first.call("POST", "/join", body).status == 200
    assert first.call("DELETE", "/cluster/5").status == 200
    ghost.start()
    assert wait_exit(ghost) == 1
    line = error_lines(ghost)[-1]
    assert "refused to add node 5" in line and "can never return" in line
    assert "Start a new node with another --id" in line


def test_a_data_directory_of_another_cluster_is_refused_with_the_fix(tmp_path: Path) -> None:
    lone = Node(1, tmp_path, FAST)
    lone.start()
    lone.wait_healthy()
    assert lone.terminate() == 0
    peers = f"1@{lone.raft_addr},2@127.0.0.1:1,3@127.0.0.1:2"
    lone.env["PEERS"] = peers
    lone.start()
    assert wait_exit(lone) == 1
    (line,) = error_lines(lone)
    assert f"first started with PEERS=1@{lone.raft_addr}, not PEERS={peers}" in line
    assert f"delete {lone.dir / 'state'} to start this node over" in line
