"""Three real example-kvstore processes on loopback, once per STORE kind.

Scenarios: writes on any node read back on every node; JSON edge cases; compare-and-
set; a hostile peer (scripts/hostile_peer.py, as the README runs it) sends every kind
of frame no honest NodeHost sends and stops nothing; the leader killed with SIGKILL
(reads and writes go on, and it catches up after a restart, by snapshot since the log
moved on); a lost quorum answers 503 in time; SIGTERM exits cleanly; a new node joins
with --join and is removed again. The scenarios after the hostile peer run on the
cluster it attacked.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from kvstore_cluster import REPO, Cluster, Node, key_path, wait_for

pytestmark = pytest.mark.integration

SNAPSHOT_ENTRIES = 20  # small, so a node that was down catches up from a snapshot
MAX_VALUE_BYTES = 2 * 1024 * 1024


# Scenarios whose outcome depends on the state machine run on both kinds in CI; those
# that exercise the service and the library alike run on disk only with --run-slow.
BOTH_STORES = pytest.mark.parametrize("cluster", ["memory", "disk"], indirect=True)
MEMORY_IN_CI = pytest.mark.parametrize(
    "cluster", ["memory", pytest.param("disk", marks=pytest.mark.slow)], indirect=True
)


@pytest.fixture(scope="module")
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp(f"kv-{request.param}")
    c = Cluster(
        root,
        STORE=request.param,
        SNAPSHOT_ENTRIES=str(SNAPSHOT_ENTRIES),
        MAX_VALUE_BYTES=str(MAX_VALUE_BYTES),
        LOG_LEVEL="info",
    )
    try:
        c.start()
        yield c
    finally:
        c.stop_all()


@BOTH_STORES
def test_writes_on_any_node_read_back_on_every_node(cluster: Cluster) -> None:
    nodes = cluster.running()
    for node in nodes:
        assert node.put(f"from-{node.node_id}", {"writer": node.node_id}).status == 200
    for reader in nodes:
        for writer in nodes:
            reply = reader.get(f"from-{writer.node_id}")
            assert (reply.status, reply.json()) == (200, {"writer": writer.node_id})
    cluster.wait_converged()
    for reader in nodes:  # a local read, once the replica has applied
        assert reader.get("from-1", "?stale=1").json() == {"writer": 1}


@BOTH_STORES
def test_json_values_and_keys_at_the_edges(cluster: Cluster) -> None:
    a, b, _ = cluster.running()
    values = {
        "ключ/🔑 with spaces?&=#": "ünïcødé ✓",
        "a/../b": 1,
        "number": 12345678901234567890,
        "float": 1.5,
        "list": [1, "two", None, True, {"x": []}],
        "object": {"z": 1, "a": {"nested": [1, 2, 3]}},
        "null": None,
        "big": "x" * (MAX_VALUE_BYTES - 1024),
    }
    for key, value in values.items():
        assert a.put(key, value).status == 200, key
    for key, value in values.items():
        reply = b.get(key)
        assert (reply.status, reply.json()) == (200, value), key
        assert reply.headers["Content-Type"].startswith("application/json")
    assert b.get("a/b").status == 404, "a/../b is a key, not a path"

    missing = b.get("never-written")
    assert (missing.status, missing.body) == (404, b"null")

    for body, message in (
        (b"{bad", "invalid JSON"),
        (b"", "expected a JSON value"),
        (b"NaN", "NaN is not valid JSON"),
        (b"\xff", "not UTF-8"),
    ):
        reply = a.call("PUT", key_path("bad"), body)
        assert reply.status == 400 and message in reply.json()["error"], reply
    too_big = json.dumps("y" * MAX_VALUE_BYTES).encode()
    reply = a.call("PUT", key_path("bad"), too_big)
    assert reply.status == 413 and "MAX_VALUE_BYTES" in reply.json()["error"]
    reply = a.call("PUT", "/key/" + "k" * 1025, b"1")
    assert reply.status == 400 and "at most 1024" in reply.json()["error"]
    reply = a.call("GET", "/key/%ff")
    assert reply.status == 400 and "UTF-8" in reply.json()["error"]
    reply = a.call("GET", key_path("x") + "?timeout=-1")
    assert reply.status == 400 and "timeout" in reply.json()["error"]
    assert b.get("bad").status == 404, "nothing was written by a refused request"


@BOTH_STORES
def test_compare_and_set_and_delete(cluster: Cluster) -> None:
    a, b, c = cluster.running()
    path = key_path("counter")
    assert a.call("POST", path + "?cas=null", b"1").status == 200, "null: create if missing"
    assert b.call("POST", path + "?cas=null", b"5").status == 409
    conflict = c.call("POST", path + "?cas=2", b"3")
    assert conflict.status == 409
    assert conflict.json()["current"] == 1
    assert c.call("POST", path + "?cas=true", b"3").status == 409, "true is not 1"
    assert c.call("POST", path + "?cas=1.0", b"3").status == 409, "1.0 is not 1"
    assert b.call("POST", path + "?cas=1", b'{"n": 2}').status == 200
    assert a.call("POST", path + "?cas=%7B%22n%22%3A%202%7D", b"3").status == 200
    assert a.get("counter").json() == 3

    reply = a.call("POST", path, b"4")
    assert reply.status == 400 and "?cas=" in reply.json()["error"]
    reply = a.call("POST", path + "?cas=%7B", b"4")
    assert reply.status == 400 and reply.json()["error"].startswith("cas:")

    assert b.call("DELETE", path).json() == {"key": "counter", "deleted": True}
    assert c.call("DELETE", path).json() == {"key": "counter", "deleted": False}
    assert a.get("counter").status == 404
    assert a.call("POST", path + "?cas=null", b"7").status == 200


@MEMORY_IN_CI
def test_cluster_view_metrics_and_health(cluster: Cluster) -> None:
    nodes = cluster.running()
    leader = cluster.leader()
    for node in nodes:
        view = node.cluster()
        assert view["node"] == {
            "id": node.node_id,
            "http_addr": node.http_addr,
            "raft_addr": node.raft_addr,
        }
        assert view["store"] == cluster.settings["STORE"]
        assert view["leader"] == leader.node_id and view["term"] >= 1
        assert view["members"] == {str(n.node_id): n.raft_addr for n in nodes}
        (shard,) = view["shards"]
        assert shard["is_leader"] == (node is leader) and shard["running"]
        health = node.call("GET", "/healthz")
        assert (health.status, health.json()["status"]) == (200, "ok")
    metrics = nodes[0].call("GET", "/metrics")
    assert metrics.status == 200 and metrics.headers["Content-Type"].startswith("text/plain")
    text = metrics.body.decode()
    assert "nodehost_proposals_total" in text, "the NodeHost's metrics"
    assert 'kvstore_http_requests_total{code="200",method="GET",route="/cluster"}' in text
    assert "kvstore_http_request_seconds_bucket" in text

    unknown = nodes[0].call("GET", "/nope")
    assert (unknown.status, unknown.json()) == (404, {"error": "Not Found"})
    wrong = nodes[0].call("PATCH", "/cluster")
    assert wrong.status == 405 and "error" in wrong.json()


@MEMORY_IN_CI
def test_a_hostile_peer_stops_nothing(cluster: Cluster) -> None:
    """The black-box check of the README (Operations, messages from peers): the script
    sends the nodes' Raft ports over a thousand hostile frames and streams while it
    writes through the API, and must see each refused (it counts the nodes'
    refusals), every shard committing during and after, every acknowledged write read
    back from every node, and equal state hashes. Then, independently of the script,
    every node serves and the replicas agree."""
    nodes = cluster.running()
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "hostile_peer.py"),
            "--raft",
            ",".join(n.raft_addr for n in nodes),
            "--http",
            ",".join(f"http://{n.http_addr}" for n in nodes),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    print(done.stdout)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert "OK: every hostile input was refused" in done.stdout
    sent = int(done.stdout.split("sent ", 1)[1].split()[0])
    assert sent > 1000
    for node in nodes:
        assert node.alive()
        assert node.put(f"after-hostile-{node.node_id}", node.node_id).status == 200
    for reader in nodes:
        for writer in nodes:
            assert reader.get(f"after-hostile-{writer.node_id}").json() == writer.node_id
    cluster.wait_converged()
    for node in nodes:
        for shard in node.cluster()["shards"]:
            assert shard["running"] and shard["failed"] is None


@BOTH_STORES
def test_killed_leader_is_replaced_and_catches_up(cluster: Cluster) -> None:
    leader = cluster.leader()
    before = {f"before-{i}": i for i in range(5)}
    for key, value in before.items():
        assert leader.put(key, value).status == 200
    leader.kill()
    killed = time.monotonic()
    survivor = cluster.running()[0]
    for node in cluster.running():  # reads are retried inside the request's timeout
        for key, value in before.items():
            assert node.get(key, "?timeout=30").json() == value
    # A write caught by the crash is answered 503 (its outcome is unknown), never
    # hangs; a client retries it. The time to the first success is printed.
    attempts = []

    def write() -> bool:
        reply = survivor.put("after-kill", "written", "?timeout=2")
        attempts.append(reply.status)
        assert reply.status in (200, 503), reply
        if reply.status == 503:  # two of three are up: a failover, not a lost quorum
            error = reply.json()["error"]
            assert "leader changing" in error and "quorum" not in error, error
            assert reply.headers.get("Retry-After") == "1"
        return reply.status == 200

    wait_for("a write after the leader's crash", write, timeout=60)
    print(
        f"[{cluster.settings['STORE']}] writes continue {time.monotonic() - killed:.2f}s "
        f"after SIGKILL of the leader; attempts: {attempts}"
    )

    for i in range(3 * SNAPSHOT_ENTRIES):  # past a snapshot and its compaction overhead
        assert cluster.running()[i % 2].put(f"while-down-{i}", i).status == 200
    new_leader = cluster.leader()
    assert new_leader is not leader

    leader.start()
    leader.wait_healthy()
    cluster.wait_converged()
    metrics = leader.call("GET", "/metrics").body.decode().splitlines()
    received = [m for m in metrics if m.startswith('nodehost_snapshots_total{event="received"}')]
    assert received and float(received[0].split()[-1]) >= 1, "it caught up from a snapshot"
    assert leader.get("while-down-59", "?stale=1").json() == 59
    assert leader.get("after-kill").json() == "written"
    assert leader.put("back", True).status == 200


@MEMORY_IN_CI
def test_lost_quorum_answers_503_in_time_and_sigterm_is_clean(cluster: Cluster) -> None:
    leader = cluster.leader()
    crashed, stopped = [n for n in cluster.running() if n is not leader]
    assert leader.put("quorum", "before").status == 200
    cluster.wait_converged()
    crashed.kill()
    try:
        assert stopped.terminate() == 0, "SIGTERM: a clean exit"
        assert "stopping" in stopped.log() and "Traceback" not in stopped.log()

        reply = leader.put("quorum", "after", "?timeout=2")
        assert reply.status == 503, reply
        assert "quorum" in reply.json()["error"] and reply.headers.get("Retry-After") == "1"
        reply = leader.get("quorum", "?timeout=2")
        assert reply.status == 503 and "quorum" in reply.json()["error"], reply
        assert leader.get("quorum", "?stale=1").json() == "before", "a local read needs no quorum"
        assert leader.call("GET", "/cluster").status == 200
        assert leader.call("GET", "/healthz").status == 200, (
            "a restart would not bring a quorum back"
        )
    finally:  # the next scenarios need all three
        for node in (crashed, stopped):
            if not node.alive():
                node.start()
        for node in (crashed, stopped):
            node.wait_healthy()
    reply = stopped.put("quorum", "healed", "?timeout=30")
    assert reply.status == 200, reply
    assert crashed.get("quorum", "?timeout=30").json() == "healed"


@MEMORY_IN_CI
def test_a_new_node_joins_and_is_removed(cluster: Cluster) -> None:
    first = cluster.nodes[1] if cluster.nodes[1].alive() else cluster.running()[0]
    assert first.put("seen-by-4", "yes").status == 200
    newcomer: Node = cluster.add_node(4, JOIN=first.http_addr)
    newcomer.start()
    newcomer.wait_healthy()
    assert newcomer.get("seen-by-4", "?timeout=30").json() == "yes"
    assert newcomer.put("from-4", 4, "?timeout=30").status == 200
    assert first.get("from-4").json() == 4
    wait_for("4 in the membership", lambda: "4" in first.cluster()["members"], 30)

    again = first.call("POST", "/join", json.dumps({"id": 4, "addr": newcomer.raft_addr}).encode())
    assert again.status == 200 and again.json()["added"] is False, "joining twice is harmless"
    taken = first.call("POST", "/join", json.dumps({"id": 5, "addr": newcomer.raft_addr}).encode())
    assert taken.status == 409 and "already the address of node 4" in taken.json()["error"]
    wrong = first.call(
        "POST", "/join", json.dumps({"id": 5, "addr": "127.0.0.1:1", "shards": 9}).encode()
    )
    assert wrong.status == 409 and "shards=1" in wrong.json()["error"]
    assert first.call("POST", "/join", b"[]").status == 400
    bad_addr = first.call("POST", "/join", json.dumps({"id": 5, "addr": "nowhere"}).encode())
    assert bad_addr.status == 400 and "host:port" in bad_addr.json()["error"]

    removed = first.call("DELETE", "/cluster/4")
    assert removed.status == 200, removed
    wait_for("4 out of the membership", lambda: "4" not in first.cluster()["members"], 30)
    assert first.call("DELETE", "/cluster/4").status == 404
    back = first.call("POST", "/join", json.dumps({"id": 4, "addr": newcomer.raft_addr}).encode())
    assert back.status == 409 and "can never return" in back.json()["error"]
    assert newcomer.terminate() == 0
    del cluster.nodes[4]
    assert first.put("after-removal", 1).status == 200
