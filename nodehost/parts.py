"""The parts a NodeHost is built from that have more than one implementation.

    NodeHost(config, logdb_factory=..., transport_factory=..., clock=...,
             runtime_factory=..., rng=..., replica_parts=...)

Like Dragonboat's `LogDBFactory` and `TransportFactory`: a NodeHost never picks its log
store, its transport or its clock itself; it calls what it was given, and by default
gets RocksDB, the transport its config names (gRPC) and the wall clock; its engine runs
on threads (nodehost.runtime) and its random choices come from an unseeded generator.
Tests and
users' own tests hand in the in-memory ones and a simulated clock
(nodehost.testing.simulation), and a known-bug variant is a wrapper or subclass handed
in the same way, never a switch inside the product.

Rules:
- A factory is called once per NodeHost, after its directory is locked, with everything
  the part needs; what it returns belongs to that NodeHost, which closes it.
- A part must keep its own contract whatever wraps it (logdb.ILogDB,
  transport.ITransport): the engine trusts what they say, as it trusts RocksDB and gRPC.
- The clock is monotonic seconds. Request deadlines, retries, ticks and admission by
  expected wait read it; durations measured for metrics only use the process clock.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from logdb import ILogDB, RocksLogDB
from nodehost.env import check_room_named
from nodehost.raft import Raft
from nodehost.rsm import StateMachineManager
from nodehost.runtime import Runtime, ThreadedRuntime
from transport import ITransport, TransportConfig, TransportHandler, create_transport

if TYPE_CHECKING:
    from nodehost.config import NodeHostConfig


class LogDBFactory(Protocol):
    def __call__(self, config: NodeHostConfig, directory: str) -> ILogDB:
        """Open the log store of the NodeHost configured by `config`, kept in
        `directory` (its `wal_dir`, or `logdb/` in its `node_host_dir`). Raise a
        logdb.LogDBError when it cannot be opened: the NodeHost names the setting."""
        ...


class TransportFactory(Protocol):
    def __call__(self, config: TransportConfig, handler: TransportHandler) -> ITransport:
        """A transport for `config` that hands what it receives to `handler`; the
        NodeHost starts it on its engine loop."""
        ...


class RuntimeFactory(Protocol):
    def __call__(self, config: NodeHostConfig) -> Runtime:
        """Where the engine of the NodeHost configured by `config` runs its work."""
        ...


@dataclass(frozen=True, slots=True)
class ReplicaParts:
    """What each replica is made of inside the host: the Raft protocol its core runs,
    and the layer between the log and the user's state machine (sessions, membership,
    snapshots). Only tests hand in others: a subclass that breaks one rule on purpose
    (a known bug) proves that the simulation and the chaos suite catch it."""

    raft: type[Raft] = Raft
    state_machine_manager: type[StateMachineManager] = StateMachineManager


DEFAULT_REPLICA_PARTS = ReplicaParts()


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds since an arbitrary moment; never goes back."""
        ...


class WallClock:
    """The machine's monotonic clock (time.monotonic itself: a request's deadline costs
    no Python call more than before clocks were replaceable)."""

    __slots__ = ()
    monotonic = staticmethod(time.monotonic)


WALL_CLOCK = WallClock()


def threaded_runtime(config: NodeHostConfig) -> Runtime:
    """The default runtime: the engine loop, IO and apply workers on threads."""
    return ThreadedRuntime(config.apply_workers, use_uvloop=config.use_uvloop)


def rocksdb_logdb(config: NodeHostConfig, directory: str) -> ILogDB:
    """The default log store: RocksDB in `directory`, once it has room for a memtable
    flush (env.check_room: InvalidConfig naming wal_dir or node_host_dir otherwise)."""
    setting, path = ("wal_dir", config.wal_dir) if config.wal_dir else ("node_host_dir", "")
    check_room_named(setting, Path(path or config.node_host_dir), Path(directory))
    return RocksLogDB(directory, deployment_id=config.deployment_id, fsync=config.fsync)


def default_transport_factory(config: NodeHostConfig) -> TransportFactory:
    """The transport a NodeHost gets when none is handed in: the kind its config names
    (`NodeHostConfig.transport`: "grpc" by default, or "tcp")."""

    kind = config.transport

    def create(config: TransportConfig, handler: TransportHandler) -> ITransport:
        return create_transport(kind, config, handler)

    return create
