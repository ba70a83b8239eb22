"""Shared pieces of the transport tests: a recording engine, loops, ports, transports."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

import uvloop

from protos import raft_pb2 as pb
from transport import GrpcTransport, InMemoryNetwork, InMemoryTransport, TransportConfig
from transport.base import BaseTransport

T = TypeVar("T")

DEPLOYMENT = 7
LOOPS = ("asyncio", "uvloop")


class Recorder:
    """A TransportHandler that keeps copies of everything it is given."""

    def __init__(self, hosted: set[tuple[int, int]] | None = None, snapshot_root: str = "") -> None:
        self.hosted = hosted if hosted is not None else set()
        self.snapshot_root = snapshot_root
        self.messages: list[pb.Message] = []
        self.sources: list[str] = []
        self.unreachable: list[tuple[int, int]] = []
        self.statuses: list[tuple[int, int, bool]] = []
        self.snapshots: list[pb.Message] = []
        self.on_snapshot_dir: Callable[[], None] | None = None  # test hook

    def on_messages(self, source_address: str, messages: Sequence[pb.Message]) -> None:
        self.sources.append(source_address)
        for m in messages:
            copy = pb.Message()
            copy.CopyFrom(m)
            self.messages.append(copy)

    def on_unreachable(self, shard_id: int, replica_id: int) -> None:
        self.unreachable.append((shard_id, replica_id))

    def on_snapshot_status(self, shard_id: int, replica_id: int, failed: bool) -> None:
        self.statuses.append((shard_id, replica_id, failed))

    def on_snapshot_received(self, message: pb.Message) -> None:
        self.snapshots.append(message)

    def snapshot_dir(self, shard_id: int, replica_id: int, index: int) -> str | None:
        if self.on_snapshot_dir is not None:
            self.on_snapshot_dir()
        if (shard_id, replica_id) not in self.hosted:
            return None
        return os.path.join(self.snapshot_root, f"snapshot-{shard_id}-{replica_id}-{index:016x}")

    def is_hosted(self, shard_id: int, replica_id: int) -> bool:
        return (shard_id, replica_id) in self.hosted


def run(loop: str, main: Callable[[], Coroutine[Any, Any, T]], timeout: float = 30.0) -> T:
    """Run `main` on a fresh loop of the given kind, bounded in time."""

    async def bounded() -> T:
        return await asyncio.wait_for(main(), timeout)

    factory = uvloop.new_event_loop if loop == "uvloop" else None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(bounded())


async def eventually(check: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Poll `check` until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.005)


async def settle(seconds: float = 0.2) -> None:
    """Give in-flight frames a chance to arrive before asserting that none did."""
    await asyncio.sleep(seconds)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def address() -> str:
    return f"127.0.0.1:{free_port()}"


def config(raft_address: str | None = None, **kw: Any) -> TransportConfig:
    kw.setdefault("deployment_id", DEPLOYMENT)
    kw.setdefault("backoff_min", 0.02)
    kw.setdefault("backoff_max", 0.1)
    return TransportConfig(raft_address or address(), "", **kw)


def make(
    kind: str, handler: Recorder, network: InMemoryNetwork | None = None, **kw: Any
) -> BaseTransport:
    cfg = config(**kw)
    if kind == "grpc":
        return GrpcTransport(cfg, handler)
    assert network is not None
    return InMemoryTransport(network, cfg, handler)


def heartbeat(shard_id: int = 1, to: int = 2, from_id: int = 1, term: int = 5) -> pb.Message:
    return pb.Message(type=pb.HEARTBEAT, shard_id=shard_id, to=to, from_id=from_id, term=term)


async def wait_all(*aws: Awaitable[Any]) -> None:
    await asyncio.gather(*aws)
