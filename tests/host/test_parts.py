"""NodeHost's replaceable parts (nodehost.parts): the log store, the transport and the
clock it is handed are the ones it uses, and the defaults are RocksDB, gRPC and the
wall clock."""

from __future__ import annotations

import functools
import threading
from pathlib import Path

import pytest

from logdb import ILogDB, LogDBError, MemoryLogDB, RocksLogDB
from nodehost import Config, InvalidConfig, NodeHost, NodeHostConfig, ResultCode
from nodehost.parts import WALL_CLOCK
from tests.host.cluster import KV, encode, free_ports, wait_for
from transport import GrpcTransport, InMemoryNetwork, InMemoryTransport
from transport.tcp_transport import TcpTransport


class ManualClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


def _config(root: Path, rid: int) -> NodeHostConfig:
    return NodeHostConfig(
        node_host_dir=str(root / f"nh{rid}"), raft_address=f"sim-{rid}:1", rtt_millisecond=10
    )


def test_three_hosts_on_the_in_memory_store_and_transport(tmp_path: Path) -> None:
    network = InMemoryNetwork()
    stores = {rid: MemoryLogDB() for rid in (1, 2, 3)}
    members = {rid: f"sim-{rid}:1" for rid in stores}
    hosts = [
        NodeHost(
            _config(tmp_path, rid),
            logdb_factory=lambda config, directory, rid=rid: stores[rid],  # type: ignore[misc]
            transport_factory=functools.partial(InMemoryTransport, network),
        )
        for rid in stores
    ]
    try:
        for rid, host in zip(stores, hosts, strict=True):
            host.start_replica(members, False, KV, Config(shard_id=1, replica_id=rid))
        session = hosts[0].get_noop_session(1)
        hosts[0].sync_propose(session, encode("put", "k", 1), timeout=10)
        assert hosts[2].sync_read(1, "k", timeout=10) == 1
        # What was saved went to the stores handed in, and nothing to RocksDB.
        assert all(store.read_state(1, rid) is not None for rid, store in stores.items())
        assert all(store.syncs > 0 for store in stores.values())
        assert not any((tmp_path / f"nh{rid}" / "logdb" / "CURRENT").exists() for rid in stores)
    finally:
        for host in hosts:
            host.close()


def test_request_deadlines_follow_the_clock_handed_in(tmp_path: Path) -> None:
    clock = ManualClock()
    network = InMemoryNetwork()
    members = {1: "sim-1:1", 2: "sim-2:1"}
    hosts = {
        rid: NodeHost(
            _config(tmp_path, rid),
            logdb_factory=lambda config, directory: MemoryLogDB(),
            transport_factory=functools.partial(InMemoryTransport, network),
            clock=clock,
        )
        for rid in members
    }
    try:
        for rid, host in hosts.items():
            host.start_replica(members, False, KV, Config(shard_id=1, replica_id=rid))
        leader = wait_for(lambda: hosts[1].get_leader_id(1)[0], what="a leader")
        hosts.pop(3 - leader).close()  # no quorum left; the leader stays (no check_quorum)
        host = hosts[leader]
        rs = host.propose(host.get_noop_session(1), encode("put", "k", 1), timeout=3600.0)
        assert rs.wait(0.3).code is ResultCode.TIMEOUT and not rs.done()  # an hour to go
        clock.advance(3601.0)
        assert rs.wait(5.0).code is ResultCode.TIMEOUT and rs.done()  # the next tick's sweep
    finally:
        for host in hosts.values():
            host.close()


def test_a_log_store_that_will_not_open_names_the_setting(tmp_path: Path) -> None:
    def broken(config: NodeHostConfig, directory: str) -> ILogDB:
        raise LogDBError(f"cannot open {directory}: no such device")

    with pytest.raises(InvalidConfig, match=r"node_host_dir: cannot open .*no such device"):
        NodeHost(_config(tmp_path, 1), logdb_factory=broken)
    # Nothing was left locked: the same directory opens at once afterwards.
    network = InMemoryNetwork()
    NodeHost(
        _config(tmp_path, 1),
        logdb_factory=lambda config, directory: MemoryLogDB(),
        transport_factory=functools.partial(InMemoryTransport, network),
    ).close()


@pytest.mark.parametrize("kind", ["grpc", "tcp"])
def test_the_defaults_are_rocksdb_the_configured_transport_and_the_wall_clock(
    tmp_path: Path, kind: str
) -> None:
    (port,) = free_ports(1)
    host = NodeHost(
        NodeHostConfig(
            node_host_dir=str(tmp_path / "nh"), raft_address=f"127.0.0.1:{port}", transport=kind
        )
    )
    try:
        assert isinstance(host._logdb, RocksLogDB)
        assert type(host._transport) is {"grpc": GrpcTransport, "tcp": TcpTransport}[kind]
        assert host._clock is WALL_CLOCK and WALL_CLOCK.monotonic() > 0
    finally:
        host.close()
