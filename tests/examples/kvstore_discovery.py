"""Groups of example-kvstore processes that find each other through discovery.

Rules: as kvstore_cluster's (free loopback ports, stopped by PID, bounded waits); a
group also owns the etcd or DNS server its nodes use, and `logs()` shows them all.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

from kvstore_cluster import Node, wait_for

from tests.discovery.dns_server import LoopbackDns
from tests.discovery.etcd_server import EtcdServer


class DiscoNode(Node):
    """A node on loopback address `host` (127.0.0.x), so DNS can tell nodes apart."""

    def __init__(
        self,
        name: int,
        root: Path,
        env: dict[str, str],
        host: str = "127.0.0.1",
        ports: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(name, root, env)
        self.host = host
        if ports is not None:
            self.http_port, self.raft_port = ports
        self.env["HTTP_ADDR"] = self.http_addr
        self.env["RAFT_ADDR"] = self.raft_addr
        self.env["NODE_ID"] = env.get("NODE_ID", "auto")

    @property
    def raft_addr(self) -> str:
        return f"{self.host}:{self.raft_port}"

    @property
    def http_addr(self) -> str:
        return f"{self.host}:{self.http_port}"

    def id(self) -> int:
        """The node id it runs under (NODE_ID=auto picks one)."""
        node_id: int = self.cluster()["node"]["id"]
        return node_id

    def members(self) -> dict[int, str]:
        return {int(k): v for k, v in self.cluster()["members"].items()}


class Group:
    """Nodes sharing discovery settings; `logs()` for a failing test."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env
        self.nodes: list[DiscoNode] = []
        self.etcd: EtcdServer | None = None
        self.dns: LoopbackDns | None = None

    def add(
        self, host: str = "127.0.0.1", ports: tuple[int, int] | None = None, **env: str
    ) -> DiscoNode:
        node = DiscoNode(len(self.nodes) + 1, self.root, {**self.env, **env}, host, ports)
        self.nodes.append(node)
        return node

    def running(self) -> list[DiscoNode]:
        return [n for n in self.nodes if n.alive()]

    def wait_one_cluster(self, nodes: list[DiscoNode], timeout: float = 60.0) -> dict[int, str]:
        """Until every node in `nodes` is healthy and all list exactly their ids as members
        and agree on a leader. Two clusters can never pass: each would list only its own."""
        for node in nodes:
            node.wait_healthy(timeout)

        def agreed() -> dict[int, str] | None:
            ids = {n.id() for n in nodes}
            views = [n.cluster() for n in nodes]
            memberships = [{int(k) for k in v["members"]} for v in views]
            leaders = {v["leader"] for v in views}
            if all(m == ids for m in memberships) and len(leaders) == 1 and leaders <= ids:
                return {int(k): a for k, a in views[0]["members"].items()}
            return None

        return wait_for("one cluster of all the nodes", agreed, timeout)

    def leader(self, nodes: list[DiscoNode], timeout: float = 60.0) -> DiscoNode:
        def agreed() -> DiscoNode | None:
            leaders = {n.cluster()["leader"] for n in nodes}
            if len(leaders) == 1:
                (leader,) = leaders
                return next((n for n in nodes if n.id() == leader), None)
            return None

        return wait_for("the nodes to agree on a leader", agreed, timeout)

    def stop_all(self) -> None:
        """Every node is stopped, whatever happens to one of them."""
        for node in self.nodes:
            if node.alive():
                try:
                    node.terminate(timeout=20)
                except (AssertionError, subprocess.TimeoutExpired):
                    if node.proc is not None and node.proc.poll() is None:
                        os.kill(node.proc.pid, signal.SIGKILL)

    def logs(self) -> str:
        parts = [f"==== node {n.node_id} ({n.http_addr})\n{n.log()}" for n in self.nodes]
        if self.etcd is not None:
            parts.append(f"==== etcd\n{self.etcd.log()}")
        return "\n".join(parts)


def etcd_env(etcd: EtcdServer, key: str, **config: Any) -> dict[str, str]:
    return {
        "DISCO_MODE": "etcd-kv",
        "DISCO_CONFIG": json.dumps({"endpoints": [etcd.endpoint], **config}),
        "DISCO_KEY": key,
    }


def record_of(etcd: EtcdServer, key: str) -> dict[str, Any] | None:
    return etcd.get_json(f"/nodehost/discovery/{key}")


def ports_free_on(hosts: list[str]) -> tuple[int, int]:
    """Two ports free on every one of `hosts` (127.0.0.x), for nodes told apart by address."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind((hosts[0], 0))
            first = probe.getsockname()[1]
        with socket.socket() as probe:
            probe.bind((hosts[0], 0))
            second = probe.getsockname()[1]
        if first == second:
            continue
        taken = False
        for host in hosts:
            for port in (first, second):
                with socket.socket() as s:
                    try:
                        s.bind((host, port))
                    except OSError:
                        taken = True
        if not taken:
            return first, second
    raise AssertionError("no port free on every loopback address")
