"""Clusters the wire tests talk to: three nodehost members in separate processes (what CI
runs), or Debian's dqlite-demo (where installed), behind one interface.

Every process is started and stopped by the test through its PID.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

from nodehost.sqlite.client import ClusterClient
from tests.sqlite.dqlite_demo import DQLITE_DEMO, start_dqlite_demo
from tests.sqlite.processes import Member
from tests.sqlite.support import free_addresses, wait_for

RTT = 20  # ms: elections take 10 RTT


class WireCluster(Protocol):
    kind: str
    addresses: list[str]

    def leader(self) -> str: ...
    def kill(self, address: str) -> None: ...
    def stop_all(self) -> None: ...


class NodehostCluster:
    kind = "nodehost"

    def __init__(self, directory: Path, size: int = 3) -> None:
        self.addresses = free_addresses(size)
        self.members = {
            address: Member(directory / f"m{n}", address, self.addresses, RTT)
            for n, address in enumerate(self.addresses)
        }
        try:
            for member in self.members.values():
                member.launch()
            for member in self.members.values():
                member.wait_ready(90)
        except BaseException:
            self.stop_all()
            raise

    def leader(self) -> str:
        live = [a for a, m in self.members.items() if m.process and m.process.poll() is None]

        def find() -> str | None:
            with ClusterClient(live, timeout=10) as admin:
                info = admin.leader()
            return info.address if info is not None and info.address in live else None

        found: str = wait_for(find, timeout=30, what="a nodehost leader")
        return found

    def kill(self, address: str) -> None:
        """SIGKILL the member's process (by PID)."""
        self.members[address].kill()

    def restart(self, address: str) -> None:
        self.members[address].start(90)

    def stop_all(self) -> None:
        for member in self.members.values():
            member.kill()


def nodehost_cluster(directory: Path) -> Iterator[NodehostCluster]:
    cluster = NodehostCluster(directory)
    try:
        yield cluster
    finally:
        cluster.stop_all()


KINDS = [
    pytest.param("nodehost", id="nodehost"),
    pytest.param(
        "dqlite",
        id="dqlite",
        marks=pytest.mark.skipif(
            DQLITE_DEMO is None,
            reason="dqlite-demo is not installed (apt-get install go-dqlite): the same "
            "tests run against the real dqlite where it is",
        ),
    ),
]


def start(kind: str, directory: Path) -> WireCluster:
    if kind == "nodehost":
        return NodehostCluster(directory)
    return start_dqlite_demo(directory)
