"""Real example-kvstore processes on 127.0.0.1 for tests.

Rules: ports are picked free; every process is started here and stopped here by its
PID (SIGTERM, then SIGKILL after a bound); every wait is bounded and says what it
waited for; a node's output goes to a log file that a failing test prints.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def key_path(key: str) -> str:
    return "/key/" + urllib.parse.quote(key, safe="")


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


def http(method: str, url: str, body: bytes | None = None, timeout: float = 30.0) -> Reply:
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Reply(response.status, response.read(), dict(response.headers))
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, exc.read(), dict(exc.headers))


def wait_for(what: str, check: Callable[[], T | None], timeout: float, every: float = 0.1) -> T:
    """Poll `check` until it returns something other than None (or False)."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value is not None and value is not False:
                return value
        except (OSError, ValueError) as exc:
            last = exc
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what} (last error: {last})")


class Node:
    def __init__(self, node_id: int, root: Path, env: dict[str, str]) -> None:
        self.node_id = node_id
        self.http_port = free_port()
        self.raft_port = free_port()
        self.dir = root / f"node{node_id}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.env = {
            "NODE_ID": str(node_id),
            "HTTP_ADDR": f"127.0.0.1:{self.http_port}",
            "RAFT_ADDR": f"127.0.0.1:{self.raft_port}",
            "STATE_DIR": str(self.dir / "state"),
            **env,
        }
        self.argv: list[str] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.dir / "node.log"

    @property
    def raft_addr(self) -> str:
        return f"127.0.0.1:{self.raft_port}"

    @property
    def http_addr(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        env = {k: v for k, v in os.environ.items() if k not in _SETTING_VARIABLES}
        env.update(self.env)
        env["PYTHONPATH"] = str(REPO)
        with open(self.log_path, "ab") as log:
            log.write(f"---- start {self.argv} {self.env}\n".encode())
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "examples.kvstore", *self.argv],
                cwd=self.dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def call(self, method: str, path: str, body: bytes | None = None) -> Reply:
        return http(method, f"http://{self.http_addr}{path}", body)

    def get(self, key: str, query: str = "") -> Reply:
        return self.call("GET", key_path(key) + query)

    def put(self, key: str, value: Any, query: str = "") -> Reply:
        return self.call("PUT", key_path(key) + query, json.dumps(value).encode())

    def cluster(self) -> dict[str, Any]:
        reply = self.call("GET", "/cluster")
        assert reply.status == 200, reply
        info: dict[str, Any] = reply.json()
        return info

    def wait_healthy(self, timeout: float = 60.0) -> None:
        def healthy() -> bool:
            if not self.alive():
                raise AssertionError(f"node {self.node_id} exited:\n{self.log()}")
            return self.call("GET", "/healthz").status == 200

        wait_for(f"node {self.node_id} to be healthy", healthy, timeout)

    def kill(self) -> None:
        """SIGKILL: a crash, with no chance to flush or say goodbye."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def terminate(self, timeout: float = 30.0, signum: int = signal.SIGTERM) -> int:
        """SIGTERM (or `signum`), then wait for the exit code (SIGKILL if it does not come)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signum)
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
                raise AssertionError(
                    f"node {self.node_id} ignored SIGTERM for {timeout:g}s"
                ) from None
        return self.proc.returncode

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""


_SETTING_VARIABLES = {
    "NODE_ID",
    "STATE_DIR",
    "HTTP_ADDR",
    "RAFT_ADDR",
    "RAFT_LISTEN",
    "PEERS",
    "STORE",
    "JOIN",
    "SHARDS",
    "REQUEST_TIMEOUT",
    "RTT_MS",
    "SNAPSHOT_ENTRIES",
    "MAX_VALUE_BYTES",
    "LOG_LEVEL",
}


class Cluster:
    """`size` nodes started as initial members of a new cluster."""

    def __init__(self, root: Path, size: int = 3, **settings: str) -> None:
        self.root = root
        self.settings = settings
        self.nodes: dict[int, Node] = {}
        for node_id in range(1, size + 1):
            self.nodes[node_id] = Node(node_id, root, settings)
        peers = ",".join(f"{n.node_id}@{n.raft_addr}" for n in self.nodes.values())
        for node in self.nodes.values():
            node.env["PEERS"] = peers

    def start(self) -> None:
        for node in self.nodes.values():
            node.start()
        for node in self.nodes.values():
            node.wait_healthy()
        self.leader()

    def add_node(self, node_id: int, **env: str) -> Node:
        node = Node(node_id, self.root, {**self.settings, **env})
        self.nodes[node_id] = node
        return node

    def running(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.alive()]

    def leader(self, timeout: float = 60.0) -> Node:
        """The node every running node names leader of shard 1."""

        def agreed() -> Node | None:
            views = {n.cluster()["leader"] for n in self.running()}
            if len(views) == 1 and (leader := views.pop()) in self.nodes:
                node = self.nodes[leader]
                return node if node.alive() else None
            return None

        return wait_for("the nodes to agree on a leader", agreed, timeout)

    def state_hashes(self, nodes: list[Node]) -> list[list[str | None]]:
        return [[s.get("state_hash") for s in n.cluster()["shards"]] for n in nodes]

    def wait_converged(self, timeout: float = 60.0) -> None:
        """Until every running replica holds the same state (equal digests)."""

        def same() -> bool:
            hashes = self.state_hashes(self.running())
            return all(h == hashes[0] for h in hashes) and None not in hashes[0]

        wait_for("the replicas' state hashes to match", same, timeout)

    def stop_all(self) -> None:
        for node in self.nodes.values():
            if node.alive():
                try:
                    node.terminate(timeout=20)
                except AssertionError:
                    pass

    def logs(self) -> str:
        return "\n".join(f"==== node {n.node_id}\n{n.log()}" for n in self.nodes.values())
