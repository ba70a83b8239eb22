"""Three etcd members on loopback, started for one comparison and stopped by PID.

Rules: ports are picked free; each member keeps its data in the run's directory (fsync
on, etcd's default); the cluster token is unique per run, so a member can never join
another run's cluster; `wait_ready` is bounded and reports the member logs on failure.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import grpc

from examples.benchmark.compare import etcd_wire
from nodehost.bench import Workers, free_ports
from nodehost.bench.processes import WorkerFailed

READY_TIMEOUT = 60.0


def etcd_binary() -> str | None:
    return shutil.which("etcd")


@dataclass
class EtcdMember:
    name: str
    client: str  # host:port of the gRPC client API
    pid: int
    member_id: int = 0


class EtcdCluster:
    def __init__(self, workers: Workers, directory: Path, size: int = 3) -> None:
        binary = etcd_binary()
        if binary is None:
            raise FileNotFoundError("etcd is not installed (Debian: apt-get install etcd-server)")
        ports = free_ports(2 * size)
        names = [f"etcd{i + 1}" for i in range(size)]
        peers = [f"http://127.0.0.1:{ports[2 * i + 1]}" for i in range(size)]
        initial = ",".join(f"{n}={p}" for n, p in zip(names, peers, strict=True))
        token = f"nodehost-compare-{os.getpid()}-{time.monotonic_ns()}"
        self.members: list[EtcdMember] = []
        for i, name in enumerate(names):
            client = f"http://127.0.0.1:{ports[2 * i]}"
            data = directory / name
            data.mkdir(parents=True, exist_ok=True)
            child = workers.start(
                name,
                [
                    binary,
                    f"--name={name}",
                    f"--data-dir={data}",
                    f"--listen-client-urls={client}",
                    f"--advertise-client-urls={client}",
                    f"--listen-peer-urls={peers[i]}",
                    f"--initial-advertise-peer-urls={peers[i]}",
                    f"--initial-cluster={initial}",
                    f"--initial-cluster-token={token}",
                    "--initial-cluster-state=new",
                    "--logger=zap",
                    "--log-level=error",
                ],
            )
            self.members.append(EtcdMember(name, client.removeprefix("http://"), child.pid))
        self.workers = workers

    @property
    def endpoints(self) -> list[str]:
        return [m.client for m in self.members]

    @property
    def pids(self) -> list[int]:
        return [m.pid for m in self.members]

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> EtcdMember:
        """Wait until every member answers and agrees on a leader; return the leader."""
        deadline = time.monotonic() + timeout
        while True:
            self.workers.check_alive()
            leaders = asyncio.run(self._status())
            if leaders and len(set(leaders)) == 1 and 0 not in leaders:
                for member in self.members:
                    if member.member_id == leaders[0]:
                        return member
            if time.monotonic() > deadline:
                raise WorkerFailed(f"etcd: no agreed leader within {timeout:g}s ({leaders})")
            time.sleep(0.2)

    async def _status(self) -> list[int]:
        leaders = []
        for member in self.members:
            try:
                async with grpc.aio.insecure_channel(member.client) as channel:
                    call = channel.unary_unary(etcd_wire.MAINTENANCE_STATUS)
                    answer = await call(b"", timeout=2.0)
                member.member_id, leader = etcd_wire.status_leader(answer)
                leaders.append(leader)
            except (grpc.aio.AioRpcError, ValueError):
                return []
        return leaders
