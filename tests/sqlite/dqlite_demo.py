"""A real dqlite cluster for the wire tests: Debian's `dqlite-demo` (go-dqlite's demo app)
in three processes on loopback, when it is installed (CI does not install it).

Each member's wire address is a free port; its demo HTTP API is that port + 1000. Every
process is started and stopped by the test through its PID.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from nodehost.sqlite.client import ClusterClient
from nodehost.sqlite.members import Role
from tests.sqlite.support import free_addresses, wait_for

DQLITE_DEMO = shutil.which("dqlite-demo")
DQLITE_SHELL = shutil.which("dqlite")

needs_dqlite_demo = pytest.mark.skipif(
    DQLITE_DEMO is None,
    reason="dqlite-demo is not installed (apt-get install go-dqlite): these tests check "
    "wire compatibility against the real dqlite and run where it is installed",
)


@dataclass
class DqliteDemoCluster:
    kind = "dqlite"
    directory: Path
    addresses: list[str]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, address: str) -> None:
        assert DQLITE_DEMO is not None
        host, port = address.rsplit(":", 1)
        command = [
            DQLITE_DEMO,
            "--api",
            f"{host}:{int(port) + 1000}",
            "--db",
            address,
            "--dir",
            str(self.directory),
        ]
        if address != self.addresses[0]:
            command += ["--join", self.addresses[0]]
        log = (self.directory / f"{port}.log").open("ab")
        self.processes[address] = subprocess.Popen(command, stdout=log, stderr=log)

    def kill(self, address: str) -> None:
        """SIGKILL the member (by its PID) and reap it."""
        process = self.processes.pop(address)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def stop_all(self) -> None:
        for address in list(self.processes):
            self.kill(address)

    def leader(self) -> str:
        with ClusterClient(list(self.processes), timeout=10) as admin:
            info = admin.leader()
        assert info is not None, "the dqlite cluster has no leader"
        return info.address

    def wait_ready(self, voters: int) -> None:
        def formed() -> bool:
            with ClusterClient(list(self.processes), timeout=5) as admin:
                members = admin.cluster()
            return sum(member.role == Role.VOTER for member in members) >= voters

        wait_for(formed, timeout=60, what=f"{voters} dqlite voters")


def start_dqlite_demo(directory: Path, size: int = 3) -> DqliteDemoCluster:
    directory.mkdir(parents=True, exist_ok=True)
    cluster = DqliteDemoCluster(directory, free_addresses(size))
    try:
        cluster.start(cluster.addresses[0])
        cluster.wait_ready(1)
        for address in cluster.addresses[1:]:
            cluster.start(address)
        cluster.wait_ready(size)
    except BaseException:
        cluster.stop_all()
        raise
    return cluster
