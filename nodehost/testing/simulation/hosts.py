"""One simulated machine: a directory and a log store that outlive its processes, and
the process that runs on them (its loop, its NodeHost and its clients).

A machine keeps, as the chaos suite's workers keep in `replicas.json`, which replica of
which shard it runs and how that replica was first started, so that a restarted
process starts exactly those (a replica added later joins).

Rules:
- A crash closes the process's loop at once: nothing it had scheduled runs, and other
  processes find its address refusing. What its log store acknowledged survives; with a
  power cut, what was written and not synced does not (logdb.MemoryLogDB).
- A restart reopens the store first, checks that it still holds what was acknowledged
  (invariants.py), then starts a new incarnation: a new loop, NodeHost and clients.
- Every part is handed to the NodeHost through its factories (nodehost.parts):
  the store wrapped for the checker (and in a part a test hands in, when it asks for
  one), the simulated network's transport, the scheduler's clock, a runtime on the
  process's loop and a generator seeded from the run's seed.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from logdb import ILogDB, MemoryLogDB
from nodehost import (
    Config,
    IRaftEventListener,
    ISystemEventListener,
    LeaderInfo,
    NodeHost,
    NodeHostConfig,
    RaftError,
    ReplicaRemoved,
    SnapshotInfo,
)
from nodehost.nodehost import abandon
from nodehost.parts import Clock
from nodehost.runtime import Runtime
from nodehost.testing.simulation.config import SimulationConfig
from nodehost.testing.simulation.invariants import ObservedLogDB, SafetyChecker
from nodehost.testing.simulation.loop import Scheduler, SimulatedLoop
from nodehost.testing.simulation.network import SimulatedNetwork
from nodehost.testing.simulation.runtime import SimulatedRuntime
from statemachine import StateMachineType
from transport import TransportConfig
from transport.interface import TransportHandler

LogDBWrapper = Callable[[ILogDB, Clock], ILogDB]


class ClientPool(Protocol):
    def start(self, host: SimulatedHost) -> None:
        """A process booted: start its clients (if the run still makes operations)."""

    def stopped(self, host: SimulatedHost) -> None:
        """A process died or closed: its clients went with it."""


class World(Protocol):
    """What a machine needs of the run it is part of (simulation.Simulation)."""

    @property
    def seed(self) -> int: ...
    @property
    def kind(self) -> StateMachineType: ...
    @property
    def config(self) -> SimulationConfig: ...
    @property
    def scheduler(self) -> Scheduler: ...
    @property
    def network(self) -> SimulatedNetwork: ...
    @property
    def checker(self) -> SafetyChecker: ...
    @property
    def clients(self) -> ClientPool: ...
    @property
    def events(self) -> Counter[str]: ...
    @property
    def logdb_wrapper(self) -> LogDBWrapper | None: ...
    @property
    def host_parts(self) -> dict[str, Any]: ...

    def leader_seen(self, info: LeaderInfo) -> None: ...
    def recorded_factory(self) -> Callable[[int, int], Any]: ...
    def replica_config(self, shard_id: int, replica_id: int) -> Config: ...


@dataclass(slots=True)
class ReplicaPlan:
    """How this machine starts its replica of a shard (as first started)."""

    shard_id: int
    replica_id: int
    members: dict[int, str]
    join: bool


class _Listener(IRaftEventListener, ISystemEventListener):
    """What the run hears from each NodeHost: leaders (checked), snapshots (counted)."""

    def __init__(self, sim: World) -> None:
        self._sim = sim

    def leader_updated(self, info: LeaderInfo) -> None:
        self._sim.leader_seen(info)

    def snapshot_received(self, info: SnapshotInfo) -> None:
        self._sim.events["snapshots installed"] += 1


class SimulatedHost:
    def __init__(self, sim: World, index: int, address: str, directory: Path) -> None:
        self.sim = sim
        self.index = index
        self.address = address
        self.directory = directory
        self.store = MemoryLogDB()
        self.plans: dict[int, ReplicaPlan] = {}
        self.nh: NodeHost | None = None
        self.loop: SimulatedLoop | None = None
        self.incarnation = 0
        self.power_cut = False  # how the last crash happened
        self.node_host_id = str(uuid.UUID(int=index + 1))

    @property
    def up(self) -> bool:
        return self.nh is not None

    def __repr__(self) -> str:
        return f"host{self.index}"

    # ------------------------------------------------------------------ lifecycle

    def boot(self) -> None:
        """Start a new process on this machine: its NodeHost, replicas and clients."""
        sim = self.sim
        self.incarnation += 1
        name = f"host{self.index}.{self.incarnation}"
        loop = self.loop = sim.scheduler.loop(name)
        seed = f"{sim.seed}/{self.index}/{self.incarnation}"
        runtime: Runtime = SimulatedRuntime(
            loop,
            random.Random(f"runtime/{seed}"),
            io_latency=sim.config.io_latency,
            apply_latency=sim.config.apply_latency,
        )
        store: ILogDB = self.store
        wrapper = sim.logdb_wrapper
        if wrapper is not None:
            store = wrapper(store, sim.scheduler)
        observed = ObservedLogDB(store, sim.checker)

        def transport(config: TransportConfig, handler: TransportHandler) -> Any:
            return sim.network.transport(config, handler, random.Random(f"transport/{seed}"))

        config = sim.config
        listener = _Listener(sim)
        self.nh = NodeHost(
            NodeHostConfig(
                node_host_dir=str(self.directory),
                raft_address=self.address,
                rtt_millisecond=config.rtt_ms,
                node_host_id=self.node_host_id,
                raft_event_listener=listener,
                system_event_listener=listener,
            ),
            logdb_factory=lambda c, d: observed,
            transport_factory=transport,
            clock=sim.scheduler,
            runtime_factory=lambda c: runtime,
            rng=random.Random(f"nodehost/{seed}"),
            **sim.host_parts,
        )
        for plan in sorted(self.plans.values(), key=lambda p: p.shard_id):
            self.start_replica(plan)
        sim.clients.start(self)

    def start_replica(self, plan: ReplicaPlan) -> bool:
        nh = self.nh
        assert nh is not None
        sim = self.sim
        self.plans[plan.shard_id] = plan
        first = not nh.has_node_info(plan.shard_id, plan.replica_id)
        members = plan.members if first and not plan.join else {}
        create = sim.recorded_factory()
        config = sim.replica_config(plan.shard_id, plan.replica_id)
        try:
            if sim.kind is StateMachineType.CONCURRENT:
                nh.start_concurrent_replica(members, plan.join, create, config)
            elif sim.kind is StateMachineType.ON_DISK:
                nh.start_on_disk_replica(members, plan.join, create, config)
            else:
                nh.start_replica(members, plan.join, create, config)
        except ReplicaRemoved:
            return False
        return True

    def crash(self, power_cut: bool) -> None:
        """The process dies at once (SIGKILL, or the machine loses power)."""
        if self.nh is None or self.loop is None:
            return
        self.sim.clients.stopped(self)
        self.loop.crash()
        abandon(self.nh)
        self.nh = None
        self.power_cut = power_cut

    def restart(self) -> None:
        """Reopen the store (after the crash's kind of loss), check it, boot again."""
        if self.nh is not None:
            return
        if self.power_cut:
            self.sim.events["power cuts"] += 1
            self.store.power_cut()
        else:
            self.store.restart()
        replicas = [(p.shard_id, p.replica_id) for p in self.plans.values()]
        self.sim.checker.recovered(self.store, replicas)
        for shard_id, replica_id in replicas:
            self.sim.checker.rebuilt(shard_id, replica_id)
        self.boot()

    def stop(self) -> None:
        """Close the process cleanly (the end of a run)."""
        nh = self.nh
        if nh is None:
            return
        self.sim.clients.stopped(self)
        try:
            nh.close()
        except RaftError:
            pass
        self.nh = None
