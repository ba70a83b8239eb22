"""Shared pieces of the transport tests: a recording engine, loops, ports, transports."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import uvloop

from protos import raft_pb2 as pb
from tests.conftest import IN_CI
from transport import (
    GrpcTransport,
    InMemoryNetwork,
    InMemoryTransport,
    TcpTransport,
    TransportConfig,
)
from transport.base import BaseTransport
from transport.snapshot_send import stream_snapshot

T = TypeVar("T")

__all__ = ["IN_CI"]  # re-exported for the tests here

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
        self.connections: list[tuple[str, bool]] = []
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

    def on_connection(self, address: str, established: bool) -> None:
        self.connections.append((address, established))


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
    if kind == "tcp":
        return TcpTransport(cfg, handler)
    assert network is not None
    return InMemoryTransport(network, cfg, handler)


def heartbeat(shard_id: int = 1, to: int = 2, from_id: int = 1, term: int = 5) -> pb.Message:
    return pb.Message(type=pb.HEARTBEAT, shard_id=shard_id, to=to, from_id=from_id, term=term)


async def wait_all(*aws: Awaitable[Any]) -> None:
    await asyncio.gather(*aws)


async def raw_stream(
    target: str,
    method: str,
    frames: list[bytes],
    credentials: Any = None,
) -> bytes:
    """Write raw frames on one gRPC stream, as a hostile or buggy peer would."""
    import grpc

    options = [("grpc.max_send_message_length", 256 * 1024 * 1024)]
    if credentials is None:
        channel = grpc.aio.insecure_channel(target, options=options)
    else:
        channel = grpc.aio.secure_channel(target, credentials, options=options)
    try:
        call = channel.stream_unary(method)()
        for frame in frames:
            await call.write(frame)
        await call.done_writing()
        response: bytes = await call
        return response
    finally:
        await channel.close()


async def raw_tcp(
    target: str,
    kind: int,
    frames: list[bytes],
    end: bool = True,
    tls: Any = None,
    timeout: float = 10.0,
) -> bytes:
    """Write raw frames on one TCP-transport connection of `kind` (tcp_wire.py), as a
    hostile or buggy peer would; then, with `end`, half-close (an empty frame on TLS).
    Returns everything the server sent before it hung up."""
    from transport.tcp_wire import frame_bytes, preamble

    host, port = target.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port), ssl=tls)
    try:
        writer.write(preamble(kind) + b"".join(frame_bytes(f) for f in frames))
        if end:
            if tls is None:
                writer.write_eof()
            else:
                writer.write(bytes(4))
        await writer.drain()
        got = b""
        async with asyncio.timeout(timeout):
            while chunk := await reader.read(65536):
                got += chunk
        return got
    except (ConnectionResetError, BrokenPipeError):
        return b""
    finally:
        writer.close()


def tcp_answer(data: bytes) -> tuple[int, bytes]:
    """A TCP-transport answer frame split into (status, body)."""
    size = int.from_bytes(data[:4], "big")
    assert size == len(data) - 4 > 0, data[:64]
    return data[4], data[5:]


# ---------------------------------------------------------------- snapshot chunks


class Capture:
    """A SnapshotStream that keeps the frames instead of sending them."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    async def write(self, frame: bytes) -> None:
        self.frames.append(frame)

    async def finish(self) -> int:
        return len(self.frames)

    async def abort(self) -> None:
        pass


def install(tmp: Path, sizes: tuple[int, ...] = (5000, 0, 3000), **snapshot: Any) -> pb.Message:
    src = tmp / "src"
    src.mkdir(exist_ok=True)
    paths = []
    for i, size in enumerate(sizes):
        path = src / ("snapshot.bin" if i == 0 else f"extra-{i}.sst")
        path.write_bytes(os.urandom(size))
        paths.append(str(path))
    files = [
        pb.SnapshotFile(file_id=i, filepath=p, metadata=b"m%d" % i)
        for i, p in enumerate(paths[1:], 1)
    ]
    return pb.Message(
        type=pb.INSTALL_SNAPSHOT,
        shard_id=1,
        to=2,
        from_id=1,
        term=9,
        snapshot=pb.Snapshot(
            shard_id=1, index=77, term=8, filepath=paths[0], files=files, **snapshot
        ),
    )


def chunks(message: pb.Message, chunk_size: int = 1024) -> list[bytes]:
    async def main() -> list[bytes]:
        capture = Capture()
        with ThreadPoolExecutor(1) as io:
            await stream_snapshot(
                message,
                deployment_id=DEPLOYMENT,
                source_address="127.0.0.1:9001",
                chunk_size=chunk_size,
                stream=capture,
                io=io,
            )
        return capture.frames

    return run("asyncio", main)


def edit(frame: bytes, change: Callable[[pb.SnapshotChunk], None]) -> bytes:
    c = pb.SnapshotChunk.FromString(frame)
    change(c)
    return c.SerializeToString()
