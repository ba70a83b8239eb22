"""Forming clusters of daemon processes through the Python client (the CLI is exercised
by test_readme.py and test_commands.py; here speed matters more)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nodehost.cluster import Client
from tests.cluster.processes import DaemonProcess, free_addresses, wait_for


@dataclass
class Node:
    name: str
    address: str
    process: DaemonProcess
    token: str | None = None  # the join token it was admitted with (used up)

    @property
    def client(self) -> Client:
        return Client.local(self.process.state_dir, timeout=60.0)

    def members(self) -> dict[str, dict[str, Any]]:
        return {m["name"]: m for m in self.client.members()}

    def hooks(self) -> list[str]:
        path = self.process.state_dir.parent / f"{self.process.state_dir.name}.hooks"
        return path.read_text().splitlines() if path.exists() else []


def form(count: int, start: Callable[[str], DaemonProcess]) -> list[Node]:
    """`count` daemons started with `start(name)`, mc1 bootstrapped, the others joined."""
    addresses = free_addresses(count)
    nodes = [Node(f"mc{i + 1}", addresses[i], start(f"mc{i + 1}")) for i in range(count)]
    for node in nodes:
        node.process.wait_answering()
    nodes[0].client.bootstrap(nodes[0].name, nodes[0].address)
    for node in nodes[1:]:
        node.token = nodes[0].client.add_token(node.name)
        node.client.join(node.name, node.address, node.token)
    wait_for(
        lambda: all(
            m["status"] == "ONLINE" and m["role"] != "PENDING" for m in nodes[0].members().values()
        ),
        60.0,
        "every member online with a role",
    )
    return nodes


def statuses(node: Node) -> dict[str, tuple[str, str]]:
    return {name: (m["role"], m["status"]) for name, m in node.members().items()}
