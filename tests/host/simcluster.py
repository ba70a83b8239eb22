"""Clusters of NodeHosts on simulated time, for host tests where timing is not the point.

`SimCluster` offers what `cluster.Cluster` offers (start shards and replicas, find the
leader, stop, restart and add hosts), built from the simulation's parts
(nodehost.testing.simulation): each NodeHost has its own simulated process, the
in-memory transport and log store, the scheduler's clock. The hosts are real NodeHosts;
only the threads, sockets and disk are simulated.

Rules:
- A wait is a run of the scheduler until the condition holds, bounded in simulated
  seconds (and in callbacks): never a poll of the wall clock, never a sleep.
- `host(rid)` returns a `SimHost`: the NodeHost's own methods, and its blocking `sync_*`
  calls as a test on real threads makes them, each run to its end on the scheduler
  through the matching coroutine form (a blocking call cannot run on the simulation's
  one thread). `cluster.wait(rs)` is `rs.wait()`.
- Each test gets one seed: a failure replays exactly.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

from logdb import MemoryLogDB
from nodehost import Config, NodeHost, NodeHostConfig, RaftError, ShardNotReady
from nodehost.request import RequestResult, RequestState, ResultCode
from nodehost.rsm import Session
from nodehost.testing.simulation.loop import Scheduler, SimulatedLoop
from nodehost.testing.simulation.network import SimulatedNetwork
from nodehost.testing.simulation.runtime import SimulatedRuntime
from statemachine import Result
from tests.host.cluster import KV

RTT_MS = 20
T = TypeVar("T")


class SimHost:
    """A NodeHost of a SimCluster; blocking calls run on the cluster's scheduler."""

    def __init__(self, cluster: SimCluster, nh: NodeHost, loop: SimulatedLoop) -> None:
        self._cluster = cluster
        self.nh = nh
        self.loop = loop

    def __getattr__(self, name: str) -> Any:
        return getattr(self.nh, name)

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        return self._cluster.run(coro, timeout + 1.0, loop=self.loop)

    def sync_propose(self, session: Session, cmd: bytes, timeout: float) -> Result:
        return self._run(self.nh.aio_propose(session, cmd, timeout), timeout)

    def sync_read(self, shard_id: int, query: Any, timeout: float) -> Any:
        return self._run(self.nh.aio_read(shard_id, query, timeout), timeout)

    def sync_get_session(self, shard_id: int, timeout: float) -> Session:
        return self._run(self.nh.aio_get_session(shard_id, timeout), timeout)

    def sync_close_session(self, session: Session, timeout: float) -> None:
        self._run(self.nh.aio_close_session(session, timeout), timeout)

    def sync_request_snapshot(self, shard_id: int, option: Any, timeout: float) -> int:
        return self._run(self.nh.aio_request_snapshot(shard_id, option, timeout), timeout)

    def sync_get_shard_membership(self, shard_id: int, timeout: float) -> Any:
        return self._run(self.nh.aio_get_shard_membership(shard_id, timeout), timeout)

    def _membership_change(self, start: Callable[[float], RequestState], timeout: float) -> None:
        """As NodeHost's sync_request_* do: start again while dropped, then raise."""

        async def retrying() -> RequestResult:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            pause = RTT_MS / 1000.0
            while True:
                outcome = await start(max(deadline - loop.time(), 0.001))
                if outcome.code is not ResultCode.DROPPED or loop.time() + pause >= deadline:
                    return outcome
                await asyncio.sleep(pause)

        self._run(retrying(), timeout).raise_for_code()

    def sync_request_add_replica(
        self, shard_id: int, replica_id: int, target: str, index: int, timeout: float
    ) -> None:
        self._membership_change(
            lambda t: self.nh.request_add_replica(shard_id, replica_id, target, index, t), timeout
        )

    def sync_request_add_non_voting(
        self, shard_id: int, replica_id: int, target: str, index: int, timeout: float
    ) -> None:
        self._membership_change(
            lambda t: self.nh.request_add_non_voting(shard_id, replica_id, target, index, t),
            timeout,
        )

    def sync_request_add_witness(
        self, shard_id: int, replica_id: int, target: str, index: int, timeout: float
    ) -> None:
        self._membership_change(
            lambda t: self.nh.request_add_witness(shard_id, replica_id, target, index, t), timeout
        )

    def sync_request_delete_replica(
        self, shard_id: int, replica_id: int, index: int, timeout: float
    ) -> None:
        self._membership_change(
            lambda t: self.nh.request_delete_replica(shard_id, replica_id, index, t), timeout
        )


class SimCluster:
    """N NodeHosts on simulated time, each in its own directory (for snapshots)."""

    def __init__(self, root: Path, size: int = 3, seed: int = 1, **nhc: Any) -> None:
        self.root = root
        self.scheduler = Scheduler(seed)
        self.network = SimulatedNetwork(random.Random(f"network/{seed}"))
        self.addresses: dict[int, str] = {rid: f"host{rid}:7000" for rid in range(1, size + 1)}
        self.stores: dict[int, MemoryLogDB] = {}
        self.hosts: dict[int, SimHost | None] = {}
        self.nhc = {"rtt_millisecond": RTT_MS, **nhc}
        self._incarnations: dict[int, int] = {}
        self._test_loop = self.scheduler.loop("test")
        for rid in self.addresses:
            self.hosts[rid] = self._new_host(rid)

    def _new_host(self, rid: int) -> SimHost:
        incarnation = self._incarnations[rid] = self._incarnations.get(rid, 0) + 1
        seed = f"{rid}/{incarnation}"
        loop = self.scheduler.loop(f"host{rid}.{incarnation}")
        runtime = SimulatedRuntime(loop, random.Random(f"runtime/{seed}"))
        store = self.stores.setdefault(rid, MemoryLogDB())
        network = self.network
        nh = NodeHost(
            NodeHostConfig(
                node_host_dir=str(self.root / f"nh{rid}"),
                raft_address=self.addresses[rid],
                **self.nhc,
            ),
            logdb_factory=lambda c, d: store,
            transport_factory=lambda c, h: network.transport(
                c, h, random.Random(f"transport/{seed}")
            ),
            clock=self.scheduler,
            runtime_factory=lambda c: runtime,
            rng=random.Random(f"nodehost/{seed}"),
        )
        return SimHost(self, nh, loop)

    # ---------------------------------------------------------------- time

    def wait_for(self, condition: Callable[[], T], timeout: float = 10.0, what: str = "") -> T:
        """Run the cluster until `condition()` is true, at most `timeout` simulated s."""
        value: list[T] = []

        def holds() -> bool:
            try:
                got = condition()
            except RaftError:
                return False
            if got:
                value.append(got)
                return True
            return False

        if not self.scheduler.run_until(holds, timeout=timeout):
            raise AssertionError(f"not within {timeout} simulated s: {what or condition}")
        return value[-1]

    def run(
        self,
        coro: Coroutine[Any, Any, T] | Awaitable[T],
        timeout: float = 10.0,
        loop: SimulatedLoop | None = None,
    ) -> T:
        """Run `coro` (on `loop`, or a loop of the test's own) to its end."""
        target = loop or self._test_loop

        async def wrapped() -> T:
            return await coro

        task = target.create_task(wrapped())
        if not self.scheduler.run_until(task.done, timeout=timeout):
            task.cancel()
            raise AssertionError(f"not done within {timeout} simulated s: {coro}")
        return task.result()

    def wait(self, rs: RequestState, timeout: float = 30.0) -> RequestResult:
        """`rs.wait()`: its outcome, the cluster running until it is known."""
        self.wait_for(rs.done, timeout, what=f"request {rs.key}")
        return rs.result()

    def propose_retrying(self, host: SimHost, shard_id: int, cmd: bytes) -> Any:
        """Propose an idempotent command, trying again while the shard has no leader."""
        session = host.get_noop_session(shard_id)
        for _ in range(20):
            try:
                return host.sync_propose(session, cmd, timeout=2)
            except ShardNotReady:
                self.scheduler.run_for(RTT_MS / 1000.0)
        raise AssertionError("no leader took the proposal")

    # ---------------------------------------------------------------- hosts

    def add_host(self, rid: int) -> SimHost:
        self.addresses[rid] = f"host{rid}:7000"
        host = self.hosts[rid] = self._new_host(rid)
        return host

    def host(self, rid: int) -> SimHost:
        host = self.hosts[rid]
        assert host is not None, f"host {rid} is stopped"
        return host

    def live(self) -> Iterator[tuple[int, SimHost]]:
        for rid, host in self.hosts.items():
            if host is not None:
                yield rid, host

    def config(self, shard_id: int, rid: int, **overrides: Any) -> Config:
        settings: dict[str, Any] = {"election_rtt": 10, "heartbeat_rtt": 1, "check_quorum": True}
        settings.update(overrides)
        return Config(shard_id=shard_id, replica_id=rid, **settings)

    def start_shard(
        self,
        shard_id: int,
        create: Callable[[int, int], Any] = KV,
        kind: str = "regular",
        members: list[int] | None = None,
        **overrides: Any,
    ) -> None:
        ids = members or list(self.addresses)
        initial = {rid: self.addresses[rid] for rid in ids}
        for rid in ids:
            self.start_replica(rid, shard_id, initial, False, create, kind, **overrides)

    def start_replica(
        self,
        rid: int,
        shard_id: int,
        initial: dict[int, str],
        join: bool,
        create: Callable[[int, int], Any] = KV,
        kind: str = "regular",
        **overrides: Any,
    ) -> None:
        host = self.host(rid)
        start = {
            "regular": host.nh.start_replica,
            "concurrent": host.nh.start_concurrent_replica,
            "ondisk": host.nh.start_on_disk_replica,
        }[kind]
        start(initial, join, create, self.config(shard_id, rid, **overrides))

    def leader(self, shard_id: int, timeout: float = 10.0) -> int:
        """Run until every live replica agrees on one leader; return its id."""

        def agreed() -> int:
            seen = set()
            for _, host in self.live():
                try:
                    leader, _, valid = host.get_leader_id(shard_id)
                except RaftError:
                    continue
                if not valid:
                    return 0
                seen.add(leader)
            return seen.pop() if len(seen) == 1 else 0

        return self.wait_for(agreed, timeout, what=f"a leader of shard {shard_id}")

    def stop(self, rid: int) -> None:
        host = self.hosts[rid]
        if host is not None:
            host.nh.close()
            self.hosts[rid] = None

    def restart(self, rid: int) -> SimHost:
        """Close the host's process cleanly and start a new one on the same store."""
        self.stop(rid)
        self.stores[rid].restart()
        host = self.hosts[rid] = self._new_host(rid)
        return host

    def close(self) -> None:
        for rid in list(self.hosts):
            self.stop(rid)
        self._test_loop.crash()
