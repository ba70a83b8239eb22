"""In-process clusters of real NodeHosts (gRPC on 127.0.0.1, RocksDB in a temp dir).

Every wait here is bounded; a test that needs a leader gets AssertionError, not a hang.
"""

from __future__ import annotations

import hashlib
import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from nodehost import Config, NodeHost, NodeHostConfig, RaftError
from statemachine import (
    Entry,
    IConcurrentStateMachine,
    IHash,
    IOnDiskStateMachine,
    IStateMachine,
    Result,
    SnapshotFile,
    SnapshotFileCollection,
)

RTT_MS = 20
T = TypeVar("T")


def free_ports(n: int) -> list[int]:
    sockets = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def wait_for(
    condition: Callable[[], T], timeout: float = 10.0, interval: float = 0.01, what: str = ""
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except RaftError:
            value = None  # type: ignore[assignment]
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)


def encode(op: str, key: str, value: Any = None) -> bytes:
    return json.dumps({"op": op, "k": key, "v": value}).encode()


class KV(IStateMachine, IHash):
    """A dict; commands are JSON {"op": put|delete|incr, "k", "v"}; lookup(key) -> value."""

    def __init__(self, shard_id: int = 0, replica_id: int = 0) -> None:
        self.data: dict[str, Any] = {}
        self.applied: list[int] = []

    def update(self, entry: Entry) -> Result:
        if not entry.cmd:
            return Result(0)
        cmd = json.loads(entry.cmd)
        self.applied.append(entry.index)
        if cmd["op"] == "put":
            self.data[cmd["k"]] = cmd["v"]
        elif cmd["op"] == "delete":
            self.data.pop(cmd["k"], None)
        elif cmd["op"] == "incr":
            self.data[cmd["k"]] = self.data.get(cmd["k"], 0) + 1
            return Result(self.data[cmd["k"]])
        elif cmd["op"] == "fail":
            raise RuntimeError("asked to fail")
        elif cmd["op"] == "sleep":
            time.sleep(cmd["v"])
        return Result(len(self.data), entry.cmd[:16])

    def lookup(self, query: Any) -> Any:
        if query == "__all__":
            return dict(self.data)
        return self.data.get(query)

    def save_snapshot(
        self, writer: BinaryIO, files: SnapshotFileCollection, stopped: Callable[[], bool]
    ) -> None:
        writer.write(json.dumps(self.data, sort_keys=True).encode())

    def recover_from_snapshot(
        self, reader: BinaryIO, files: list[SnapshotFile], stopped: Callable[[], bool]
    ) -> None:
        self.data = json.loads(reader.read())

    def get_hash(self) -> int:
        digest = hashlib.sha256(json.dumps(self.data, sort_keys=True).encode()).digest()
        return int.from_bytes(digest[:8], "big")


class ConcurrentKV(IConcurrentStateMachine, IHash):
    def __init__(self, shard_id: int = 0, replica_id: int = 0) -> None:
        self.kv = KV()

    def update(self, entries: list[Entry]) -> list[Entry]:
        for e in entries:
            e.result = self.kv.update(e)
        return entries

    def lookup(self, query: Any) -> Any:
        return self.kv.lookup(query)

    def prepare_snapshot(self) -> Any:
        return dict(self.kv.data)

    def save_snapshot(
        self, ctx: Any, writer: BinaryIO, files: SnapshotFileCollection, stopped: Callable[[], bool]
    ) -> None:
        writer.write(json.dumps(ctx, sort_keys=True).encode())

    def recover_from_snapshot(
        self, reader: BinaryIO, files: list[SnapshotFile], stopped: Callable[[], bool]
    ) -> None:
        self.kv.data = json.loads(reader.read())

    def get_hash(self) -> int:
        return self.kv.get_hash()


class DiskKV(IOnDiskStateMachine, IHash):
    """Keeps its data and last index in a JSON file, written atomically on sync."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {}
        self.index = 0
        self.updates = 0

    def open(self, stopped: Callable[[], bool]) -> int:
        if self.path.exists():
            saved = json.loads(self.path.read_text())
            self.data, self.index = saved["data"], saved["index"]
        return self.index

    def update(self, entries: list[Entry]) -> list[Entry]:
        kv = KV()
        kv.data = self.data
        for e in entries:
            e.result = kv.update(e)
            self.index = e.index
            self.updates += 1
        self.sync()
        return entries

    def lookup(self, query: Any) -> Any:
        return self.data.get(query) if query != "__all__" else dict(self.data)

    def sync(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"data": self.data, "index": self.index}))
        tmp.replace(self.path)

    def prepare_snapshot(self) -> Any:
        return (dict(self.data), self.index)

    def save_snapshot(self, ctx: Any, writer: BinaryIO, stopped: Callable[[], bool]) -> None:
        writer.write(json.dumps({"data": ctx[0], "index": ctx[1]}).encode())

    def recover_from_snapshot(self, reader: BinaryIO, stopped: Callable[[], bool]) -> None:
        saved = json.loads(reader.read())
        self.data, self.index = saved["data"], saved["index"]
        self.sync()

    def close(self) -> None:
        pass

    def get_hash(self) -> int:
        digest = hashlib.sha256(json.dumps(self.data, sort_keys=True).encode()).digest()
        return int.from_bytes(digest[:8], "big")


def propose_retrying(host: NodeHost, shard_id: int, cmd: bytes, timeout: float = 10.0) -> Any:
    """Propose an idempotent command, retrying while the shard has no leader (callers
    are told to retry ShardNotReady)."""
    from nodehost import ShardNotReady

    deadline = time.monotonic() + timeout
    session = host.get_noop_session(shard_id)
    while True:
        try:
            return host.sync_propose(session, cmd, timeout=2)
        except ShardNotReady:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class Cluster:
    """N NodeHosts on free loopback ports, each in its own directory."""

    def __init__(self, root: Path, size: int = 3, **nhc: Any) -> None:
        self.root = root
        self.addresses = {i + 1: f"127.0.0.1:{p}" for i, p in enumerate(free_ports(size))}
        self.hosts: dict[int, NodeHost | None] = {}
        self.nhc = {"rtt_millisecond": RTT_MS, **nhc}
        for rid in self.addresses:
            self.hosts[rid] = self._new_host(rid)

    def _new_host(self, rid: int) -> NodeHost:
        return NodeHost(
            NodeHostConfig(
                node_host_dir=str(self.root / f"nh{rid}"),
                raft_address=self.addresses[rid],
                **self.nhc,
            )
        )

    def add_host(self, rid: int) -> NodeHost:
        self.addresses[rid] = f"127.0.0.1:{free_ports(1)[0]}"
        host = self._new_host(rid)
        self.hosts[rid] = host
        return host

    def host(self, rid: int) -> NodeHost:
        host = self.hosts[rid]
        assert host is not None, f"host {rid} is stopped"
        return host

    def live(self) -> Iterator[tuple[int, NodeHost]]:
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
            "regular": host.start_replica,
            "concurrent": host.start_concurrent_replica,
            "ondisk": host.start_on_disk_replica,
        }[kind]
        start(initial, join, create, self.config(shard_id, rid, **overrides))

    def leader(self, shard_id: int, timeout: float = 10.0) -> int:
        """Wait until every live replica agrees on one leader; return its id."""

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

        return wait_for(agreed, timeout, what=f"a leader of shard {shard_id}")

    def stop(self, rid: int) -> None:
        host = self.hosts[rid]
        if host is not None:
            host.close()
            self.hosts[rid] = None

    def restart(self, rid: int) -> NodeHost:
        self.stop(rid)
        host = self._new_host(rid)
        self.hosts[rid] = host
        return host

    def close(self) -> None:
        for rid in list(self.hosts):
            self.stop(rid)
