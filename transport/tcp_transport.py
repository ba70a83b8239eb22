"""The transport between NodeHosts over plain TCP (or TLS): length-prefixed frames.

Why: a gRPC message costs about 115 us of Python and C-core work per side on this
machine kind, most of it with the GIL held on the engine's loop (the C-core writes
inline from `send_serialized_message`); a length-prefixed frame on an asyncio
transport costs a few microseconds, and a one-way frame reaches the peer's handler
without a completion-queue round trip (docs/limits.md: 165-179 k frames/s against
7,800-8,700 gRPC messages/s; ping-pong p50 0.11 ms against 0.33 ms).

Wire format (version 1), kept as explicit as gRPC's:
- A connection opens with an 8-byte preamble: `PREAMBLE` (6 bytes), the wire version
  `TCP_WIRE_VERSION` (1 byte), and the kind of stream (1 byte: `BATCHES` or
  `SNAPSHOT`). A connection with any other preamble is closed unread and counted.
- Then frames: a 4-byte big-endian length and that many bytes. A frame is exactly
  what a gRPC message of the same stream carries (frames.py: a MessageBatch built from
  pre-encoded messages, or a SnapshotChunk), so inbound.py and snapshot_recv.py check
  both transports' input the same way.
- A batch stream is one way. A snapshot stream ends with the sender's half-close;
  the receiver answers one frame: status 0 and an Ack, or status 1 and the reason in
  UTF-8, then closes.
- This is not gRPC on the wire: every member of a deployment must use the same
  transport. A gRPC peer dialling a TCP member (or the reverse) fails the preamble or
  the HTTP/2 handshake, is counted, and keeps being reported unreachable.

Rules (the same as the gRPC transport's):
- A frame above max_message_size (and within a small slack) reaches inbound.py and is
  counted as oversized; a length beyond the slack is never buffered: the connection
  is closed and the sender reconnects.
- Mutual TLS when configured: both ends require a certificate of the deployment's CA.
- Frames of a batch stream are delivered on the loop as they arrive, synchronously:
  no task, queue or future per frame.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator, Callable
from typing import cast

from protos import raft_pb2 as pb
from transport.base import BaseTransport, Stream
from transport.config import MiB, TransportConfig, split_address
from transport.errors import BindError
from transport.interface import TransportHandler
from transport.snapshot_recv import SnapshotRejected
from transport.snapshot_send import SnapshotStream
from transport.stats import Reject
from transport.tls import ssl_contexts

log = logging.getLogger("transport")

PREAMBLE = b"NHRAFT"
TCP_WIRE_VERSION = 1
BATCHES = 1
SNAPSHOT = 2
_PREAMBLE_SIZE = len(PREAMBLE) + 2
_LENGTH = 4
_SLACK = 1 * MiB  # frames this far above max_message_size still reach the size check
_ANSWER_OK = 0
_ANSWER_REFUSED = 1
# Bytes of chunks a snapshot receiver buffers before it stops reading the socket.
_SNAPSHOT_BUFFER = 4
_HIGH_WATER = 4 * MiB


def _preamble(kind: int) -> bytes:
    return PREAMBLE + bytes((TCP_WIRE_VERSION, kind))


class TcpTransport(BaseTransport):
    def __init__(self, config: TransportConfig, handler: TransportHandler) -> None:
        super().__init__(config, handler)
        self._server_ssl: ssl.SSLContext | None = None
        self._client_ssl: ssl.SSLContext | None = None
        if config.mutual_tls:
            self._server_ssl, self._client_ssl = ssl_contexts(config)
        self._server: asyncio.Server | None = None
        self._accepted: set[_ServerConnection] = set()
        self._frame_limit = config.max_message_size + _SLACK
        self.port = 0

    # ------------------------------------------------------------------ serving

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        host, port = split_address(self.config.bind_address)
        try:
            server = await loop.create_server(
                lambda: _ServerConnection(self),
                host,
                port,
                ssl=self._server_ssl,
                reuse_address=True,
                reuse_port=False,
                backlog=1024,
            )
        except OSError as e:
            raise BindError(f"cannot listen on {self.config.bind_address}: {e}") from None
        self._server = server
        self.port = int(server.sockets[0].getsockname()[1])

    async def _stop_serving(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for connection in list(self._accepted):
            connection.abort()
        await server.wait_closed()

    # ------------------------------------------------------------------ dialling

    async def _open(self, address: str, kind: int) -> _ClientConnection:
        host, port = split_address(address)
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(
            _ClientConnection, host, port, ssl=self._client_ssl
        )
        connection.send(_preamble(kind))
        return connection

    async def _connect(self, address: str) -> Stream:
        return await self._open(address, BATCHES)

    async def _open_snapshot(self, address: str) -> SnapshotStream:
        return _SnapshotClient(await self._open(address, SNAPSHOT))


# ---------------------------------------------------------------------- the sender


class _ClientConnection(asyncio.Protocol):
    """The dialling side: frames out; for a snapshot stream, one answer frame in."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._closed: BaseException | None = None
        self._drained: asyncio.Future[None] | None = None
        self._received = bytearray()
        self._answered: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._on_lost: Callable[[], None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self._transport = cast(asyncio.Transport, transport)
        self._transport.set_write_buffer_limits(high=_HIGH_WATER)

    def notify_lost(self, wake: Callable[[], None]) -> None:
        self._on_lost = wake
        if self._closed is not None:
            wake()

    def lost(self) -> BaseException | None:
        return self._closed

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = exc or ConnectionError("connection closed by the peer")
        self._wake(self._closed)
        if self._on_lost is not None:
            self._on_lost()
        if not self._answered.done():
            self._answered.set_exception(ConnectionError("the peer closed without answering"))
            self._answered.exception()  # retrieved here: nobody may be waiting for it

    def pause_writing(self) -> None:
        if self._drained is None:
            self._drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        self._wake(None)

    def _wake(self, error: BaseException | None) -> None:
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            if error is None:
                drained.set_result(None)
            else:
                drained.set_exception(ConnectionError(str(error)))

    def data_received(self, data: bytes) -> None:
        self._received += data
        if len(self._received) >= _LENGTH:
            size = int.from_bytes(self._received[:_LENGTH], "big")
            if size > 1 * MiB:
                self.abort()
            elif len(self._received) >= _LENGTH + size and not self._answered.done():
                self._answered.set_result(bytes(self._received[_LENGTH : _LENGTH + size]))

    def send(self, data: bytes) -> None:
        if self._closed is not None or self._transport is None:
            raise ConnectionError(f"connection closed ({self._closed})")
        self._transport.write(data)

    def try_write(self, frame: bytes) -> bool:
        """Write the frame now unless the socket's buffer is above its high mark."""
        if self._closed is not None or self._transport is None:
            raise ConnectionError(f"connection closed ({self._closed})")
        if self._drained is not None:
            return False
        self._transport.write(len(frame).to_bytes(_LENGTH, "big") + frame)
        return True

    async def write(self, frame: bytes) -> None:
        while self._drained is not None:
            await self._drained
        if not self.try_write(frame):
            raise ConnectionError("connection paused again at once")

    async def answer(self) -> bytes:
        assert self._transport is not None
        if self._transport.can_write_eof():
            self._transport.write_eof()
        else:  # TLS has no half-close: an empty frame marks the end instead
            self._transport.write(bytes(_LENGTH))
        return await self._answered

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class _SnapshotClient:
    def __init__(self, connection: _ClientConnection) -> None:
        self._connection = connection

    async def write(self, frame: bytes) -> None:
        if not frame:
            raise ValueError("an empty snapshot frame would read as the end of the stream")
        await self._connection.write(frame)

    async def finish(self) -> int:
        try:
            answer = await self._connection.answer()
        finally:
            await self._connection.close()
        if answer[:1] == bytes((_ANSWER_OK,)):
            received: int = pb.Ack.FromString(answer[1:]).received
            return received
        reason = answer[1:].decode("utf-8", "replace")
        raise ConnectionError(f"snapshot refused by the peer: {reason}")

    async def abort(self) -> None:
        self._connection.abort()


# -------------------------------------------------------------------- the receiver


class _ServerConnection(asyncio.Protocol):
    """One accepted connection: the preamble, then frames to inbound.py (batches) or
    to a snapshot transfer fed through a bounded queue."""

    def __init__(self, owner: TcpTransport) -> None:
        self._owner = owner
        self._buffer = bytearray()
        self._kind = 0
        self._transport: asyncio.Transport | None = None
        self._frames: asyncio.Queue[bytes | None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._owner._accepted.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._owner._accepted.discard(self)
        if self._frames is not None:
            self._frames.put_nowait(None)
        self._transport = None

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()
        if self._task is not None:
            self._task.cancel()

    def eof_received(self) -> bool | None:
        if self._frames is not None:
            self._frames.put_nowait(None)
            return True  # keep the socket open for the answer
        return None

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        if not self._kind and not self._read_preamble():
            return
        kind = self._kind
        on_frame = self._owner._inbound.on_frame
        limit = self._owner._frame_limit
        start = 0
        end = len(buffer)
        while end - start >= _LENGTH:
            size = int.from_bytes(buffer[start : start + _LENGTH], "big")
            if size > limit:
                self._owner.stats.reject(
                    Reject.OVERSIZED, f"{size} byte frame announced, limit {limit}"
                )
                self.abort()
                return
            if end - start - _LENGTH < size:
                break
            frame = bytes(buffer[start + _LENGTH : start + _LENGTH + size])
            start += _LENGTH + size
            if kind == BATCHES:
                on_frame(frame)
            else:
                self._snapshot_frame(frame)
            if self._transport is None:
                return  # aborted while delivering
        if start:
            del buffer[:start]

    def _read_preamble(self) -> bool:
        buffer = self._buffer
        if len(buffer) < _PREAMBLE_SIZE:
            if not PREAMBLE.startswith(bytes(buffer[: len(PREAMBLE)])):
                self._refuse(f"{bytes(buffer[:16])!r}")
            return False
        head = bytes(buffer[:_PREAMBLE_SIZE])
        del buffer[:_PREAMBLE_SIZE]
        version, kind = head[len(PREAMBLE)], head[len(PREAMBLE) + 1]
        if head[: len(PREAMBLE)] != PREAMBLE or kind not in (BATCHES, SNAPSHOT):
            self._refuse(f"{head!r}")
            return False
        if version != TCP_WIRE_VERSION:
            self._owner.stats.reject(Reject.WRONG_VERSION, f"TCP wire version {version}")
            self.abort()
            return False
        self._kind = kind
        if kind == SNAPSHOT:
            self._frames = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._receive_snapshot())
        return True

    def _refuse(self, what: str) -> None:
        peer = None if self._transport is None else self._transport.get_extra_info("peername")
        self._owner.stats.reject(Reject.MALFORMED, f"connection from {peer} opened with {what}")
        self.abort()

    # ---------------------------------------------------------------- snapshots

    def _snapshot_frame(self, frame: bytes) -> None:
        assert self._frames is not None and self._transport is not None
        if not frame:  # TLS's end of stream (no half-close there)
            self._frames.put_nowait(None)
            return
        self._frames.put_nowait(frame)
        if self._frames.qsize() >= _SNAPSHOT_BUFFER and not self._paused:
            self._paused = True
            self._transport.pause_reading()

    async def _chunks(self) -> AsyncIterator[bytes]:
        assert self._frames is not None
        while True:
            frame = await self._frames.get()
            if self._paused and self._frames.qsize() < _SNAPSHOT_BUFFER // 2:
                self._paused = False
                if self._transport is not None:
                    self._transport.resume_reading()
            if frame is None:
                return
            yield frame

    async def _receive_snapshot(self) -> None:
        owner = self._owner
        try:
            count = await owner._snapshot_inbox.receive(self._chunks())
        except SnapshotRejected as e:
            self._answer(_ANSWER_REFUSED, str(e).encode("utf-8", "replace"))
            return
        except asyncio.CancelledError:
            raise
        except Exception as e:  # counted and logged by the inbox
            self._answer(_ANSWER_REFUSED, f"receiver failed: {e}".encode("utf-8", "replace"))
            return
        owner.stats.snapshots_received += 1
        self._answer(_ANSWER_OK, pb.Ack(received=count).SerializeToString())

    def _answer(self, status: int, body: bytes) -> None:
        transport = self._transport
        if transport is None:
            return
        answer = bytes((status,)) + body
        transport.write(len(answer).to_bytes(_LENGTH, "big") + answer)
        transport.close()


def frame_bytes(frame: bytes) -> bytes:
    """One frame as it travels (for tests and tools that speak the wire directly)."""
    return len(frame).to_bytes(_LENGTH, "big") + frame


def preamble(kind: int) -> bytes:
    return _preamble(kind)


__all__ = ["BATCHES", "SNAPSHOT", "TCP_WIRE_VERSION", "TcpTransport", "frame_bytes", "preamble"]
