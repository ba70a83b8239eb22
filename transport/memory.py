"""An in-process transport with the same interface, for tests above the transport.

Rules:
- Frames are the very bytes the gRPC transport would send, and they pass the same
  checks on arrival (inbound.py, snapshot_recv.py): only the wire is simulated.
- Each transport lives on its own NodeHost's loop, possibly on another thread: frames
  cross with call_soon_threadsafe, in order. A transport that is closed or was never
  started at an address looks like a refused connection, so the breaker, unreachable
  reports and reconnects behave as with gRPC, and a transport started again at the
  same address is picked up.
- Frames and snapshot chunks are handed over without back-pressure: fine for tests,
  not for a sender that outruns its receiver for long, nor for snapshots bigger than
  memory.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
import threading
from collections.abc import AsyncIterator, Callable

from transport.base import BaseTransport, Stream
from transport.config import TransportConfig
from transport.errors import BindError
from transport.interface import TransportHandler
from transport.snapshot_send import SnapshotStream

_END = b""  # the sender finished (no real chunk frame is empty: it names its transfer)


class InMemoryNetwork:
    """Which in-memory transport listens at which address; thread-safe.

    `latency(source, target)`, when given, is how long (seconds, on the receiver's loop
    clock) a batch takes from one address to another; a stream still delivers in the
    order it was written, as TCP does. None: at once (the next turn of the receiver's
    loop)."""

    def __init__(self, latency: Callable[[str, str], float] | None = None) -> None:
        self._hosts: dict[str, InMemoryTransport] = {}
        self._lock = threading.Lock()
        self.latency = latency

    def _bind(self, address: str, transport: InMemoryTransport) -> None:
        with self._lock:
            holder = self._hosts.get(address)
            # A transport whose loop is closed belongs to a process that is gone (a
            # simulated crash): like a dead process's socket, it holds no address.
            if holder is not None and not (holder._loop is not None and holder._loop.is_closed()):
                raise BindError(f"cannot listen on {address}: address in use")
            self._hosts[address] = transport

    def _unbind(self, address: str, transport: InMemoryTransport) -> None:
        with self._lock:
            if self._hosts.get(address) is transport:
                del self._hosts[address]

    def lookup(self, address: str) -> InMemoryTransport | None:
        with self._lock:
            return self._hosts.get(address)


class InMemoryTransport(BaseTransport):
    def __init__(
        self,
        network: InMemoryNetwork,
        config: TransportConfig,
        handler: TransportHandler,
        *,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(config, handler, rng=rng)
        self._network = network
        self._serving = False

    async def _serve(self) -> None:
        self._network._bind(self.config.bind_address, self)
        self._serving = True

    async def _stop_serving(self) -> None:
        self._serving = False
        self._network._unbind(self.config.bind_address, self)

    def _target(self, address: str) -> InMemoryTransport:
        target = self._network.lookup(address)
        if (
            target is None
            or not target._serving
            or target._loop is None
            or target._loop.is_closed()  # its process is gone
        ):
            raise ConnectionRefusedError(f"nothing listens at {address}")
        return target

    def _accept_frame(self, frame: bytes) -> None:
        """On this transport's loop: one batch frame arrived."""
        if self._serving:
            self._inbound.on_frame(frame)

    async def _connect(self, address: str) -> Stream:
        return _MemoryStream(self, address, self._target(address))

    async def _open_snapshot(self, address: str) -> SnapshotStream:
        target = self._target(address)
        assert target._loop is not None
        chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        result = asyncio.run_coroutine_threadsafe(target._receive_snapshot(chunks), target._loop)
        return _MemorySnapshotStream(target, chunks, result)

    async def _receive_snapshot(self, chunks: asyncio.Queue[bytes | None]) -> int:
        """On this transport's loop: take one snapshot stream."""
        if not self._serving:
            raise ConnectionRefusedError("transport closed")
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # cancelled by close(), as gRPC would
        try:
            count = await self._snapshot_inbox.receive(_drain(chunks))
        finally:
            self._tasks.discard(task)
        self.stats.snapshots_received += 1
        return count


async def _drain(chunks: asyncio.Queue[bytes | None]) -> AsyncIterator[bytes]:
    while True:
        chunk = await chunks.get()
        if chunk is None:
            raise ConnectionResetError("snapshot stream aborted by its sender")
        if chunk is _END:
            return
        yield chunk


class _MemoryStream:
    def __init__(self, source: InMemoryTransport, address: str, target: InMemoryTransport) -> None:
        self._address = address
        self._source = source
        self._target = target
        self._last = 0.0  # when the latest frame arrives: none overtakes it

    async def write(self, frame: bytes) -> None:
        target = self._target
        loop = target._loop
        if not target._serving or loop is None or loop.is_closed():
            raise ConnectionResetError(f"{self._address} went away")
        latency = self._source._network.latency
        if latency is None:
            loop.call_soon_threadsafe(target._accept_frame, frame)
            return
        at = loop.time() + latency(self._source.config.raft_address, self._address)
        at = self._last = max(at, self._last)
        loop.call_soon_threadsafe(_arrive_at, loop, at, target, frame)

    async def close(self) -> None:
        pass


def _arrive_at(
    loop: asyncio.AbstractEventLoop, at: float, target: InMemoryTransport, frame: bytes
) -> None:
    """On the receiver's loop: take the frame in at `at`."""
    loop.call_at(at, target._accept_frame, frame)


class _MemorySnapshotStream:
    def __init__(
        self,
        target: InMemoryTransport,
        chunks: asyncio.Queue[bytes | None],
        result: concurrent.futures.Future[int],
    ) -> None:
        self._target = target
        self._chunks = chunks
        self._result = result

    def _put(self, item: bytes | None) -> None:
        loop = self._target._loop
        if loop is None or loop.is_closed() or self._result.done():
            raise ConnectionResetError("snapshot receiver went away")
        loop.call_soon_threadsafe(self._chunks.put_nowait, item)

    async def write(self, frame: bytes) -> None:
        self._put(frame)

    async def finish(self) -> int:
        self._put(_END)
        return await asyncio.wrap_future(self._result)

    async def abort(self) -> None:
        try:
            self._put(None)
        except ConnectionResetError:
            pass
        if self._result.done() and not self._result.cancelled():
            self._result.exception()  # retrieved: the sender already knows it failed
