"""The transport between NodeHosts over plain TCP (or TLS): length-prefixed frames.

Why: a gRPC message costs about 115 us of Python and C-core work per side on this
machine kind, most of it with the GIL held on the engine's loop (the C-core writes
inline from `send_serialized_message`); a length-prefixed frame on an asyncio
transport costs a few microseconds, and a one-way frame reaches the peer's handler
without a completion-queue round trip (docs/limits.md: 165-179 k frames/s against
7,800-8,700 gRPC messages/s; ping-pong p50 0.11 ms against 0.33 ms).

The wire format is tcp_wire.py's; the receiving end, and how it treats hostile peers,
tcp_server.py's. Rules of the dialling end (the same as the gRPC transport's):
- Mutual TLS when configured: both ends require a certificate of the deployment's CA;
  the handshake is bounded by connect_timeout.
- A batch stream is one way: a byte read on it means the peer does not speak the
  wire; the connection is closed and counted, and the writer reconnects.
- An answer (a snapshot's Ack, an Identify's HostHello) above MAX_ANSWER closes the
  connection unread; every wait for the peer is bounded (connect_timeout to connect,
  write_timeout for a write the socket cannot take, snapshot_chunk_timeout for a
  snapshot's answer, the caller's timeout for Identify).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from typing import cast

from google.protobuf.message import DecodeError

from protos import raft_pb2 as pb
from transport.base import BaseTransport, Stream
from transport.config import TransportConfig, split_address
from transport.errors import BindError
from transport.interface import TransportHandler
from transport.snapshot_send import SnapshotStream
from transport.stats import Reject, TransportStats
from transport.tcp_server import Listener
from transport.tcp_wire import (
    ANSWER_OK,
    ANSWER_REFUSED,
    BATCHES,
    IDENTIFY,
    LENGTH,
    MAX_ANSWER,
    SNAPSHOT,
    TCP_WIRE_VERSION,
    frame_bytes,
    keep_alive,
    preamble,
)
from transport.tls import ssl_contexts

log = logging.getLogger("transport")

_HIGH_WATER = 4 * 1024 * 1024  # bytes in a socket's write buffer before writes wait


class TcpTransport(BaseTransport):
    def __init__(self, config: TransportConfig, handler: TransportHandler) -> None:
        super().__init__(config, handler)
        self._server_ssl: ssl.SSLContext | None = None
        self._client_ssl: ssl.SSLContext | None = None
        if config.mutual_tls:
            self._server_ssl, self._client_ssl = ssl_contexts(config)
        self._server: asyncio.Server | None = None
        self._listener = Listener(
            config,
            self.stats,
            self._inbound.on_frame,
            self._snapshot_inbox.receive,
            self._answer_identify,
            tls=config.mutual_tls,
        )
        self.port = 0

    # ------------------------------------------------------------------ serving

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        host, port = split_address(self.config.bind_address)
        tls = self._server_ssl
        try:
            server = await loop.create_server(
                self._listener.protocol,
                host,
                port,
                reuse_address=True,
                reuse_port=False,
                backlog=1024,
                ssl=tls,
                ssl_handshake_timeout=None if tls is None else self.config.connect_timeout,
            )
        except OSError as e:
            raise BindError(f"cannot listen on {self.config.bind_address}: {e}") from None
        self._server = server
        self._listener.start()
        self.port = int(server.sockets[0].getsockname()[1])

    async def _stop_serving(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        self._listener.close()
        await server.wait_closed()

    def _answer_identify(self, frame: bytes) -> tuple[int, bytes]:
        if self.hosts is None:
            return ANSWER_REFUSED, b"this NodeHost addresses hosts by host:port"
        hello = pb.HostHello()
        try:
            hello.ParseFromString(frame)
        except DecodeError:
            self.stats.reject(Reject.MALFORMED, f"Identify frame of {len(frame)} bytes")
            return ANSWER_REFUSED, b"not a HostHello"
        if hello.deployment_id != self.config.deployment_id:
            self.stats.reject(
                Reject.WRONG_DEPLOYMENT, f"Identify of deployment {hello.deployment_id}"
            )
            return ANSWER_REFUSED, b"another deployment"
        return ANSWER_OK, self.hosts.on_hello(hello).SerializeToString()

    # ------------------------------------------------------------------ dialling

    async def _open(self, address: str, kind: int) -> _ClientConnection:
        host, port = split_address(address)
        loop = asyncio.get_running_loop()
        tls = self._client_ssl
        stats = self.stats
        _, connection = await loop.create_connection(
            lambda: _ClientConnection(kind, address, stats, self.config.write_timeout),
            host,
            port,
            ssl=tls,
            ssl_handshake_timeout=None if tls is None else self.config.connect_timeout,
        )
        connection.send(preamble(kind))
        return connection

    async def _connect(self, address: str) -> Stream:
        return await self._open(address, BATCHES)

    async def _open_snapshot(self, address: str) -> SnapshotStream:
        connection = await self._open(address, SNAPSHOT)
        return _SnapshotClient(connection, self.config.snapshot_chunk_timeout)

    async def _identify(self, address: str, hello: pb.HostHello, timeout: float) -> pb.HostHello:
        async with asyncio.timeout(timeout):
            connection = await self._open(address, IDENTIFY)
            try:
                connection.send(frame_bytes(hello.SerializeToString()))
                answer = await connection.answered
            finally:
                connection.abort()
        status, body = answer[:1], answer[1:]
        if status != bytes((ANSWER_OK,)):
            raise ConnectionError(
                f"Identify refused by {address}: {body.decode('utf-8', 'replace')}"
            )
        reply = pb.HostHello()
        try:
            reply.ParseFromString(body)
        except DecodeError:
            raise ConnectionError(f"{address} answered Identify with garbage") from None
        return reply


# ---------------------------------------------------------------------- the sender


class _ClientConnection(asyncio.Protocol):
    """The dialling side: frames out; on a snapshot or Identify stream, one answer in."""

    def __init__(self, kind: int, address: str, stats: TransportStats, write_timeout: float):
        self._kind = kind
        self._address = address
        self._stats = stats
        self._write_timeout = write_timeout
        self._transport: asyncio.Transport | None = None
        self._closed: BaseException | None = None
        self._drained: asyncio.Future[None] | None = None
        self._received = bytearray()
        self.answered: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._on_lost: Callable[[], None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self._transport = cast(asyncio.Transport, transport)
        self._transport.set_write_buffer_limits(high=_HIGH_WATER)
        keep_alive(transport)

    def notify_lost(self, wake: Callable[[], None]) -> None:
        self._on_lost = wake
        if self._closed is not None:
            wake()

    def lost(self) -> BaseException | None:
        return self._closed

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = exc or ConnectionError("connection closed by the peer")
        self._transport = None
        self._wake(self._closed)
        if self._on_lost is not None:
            self._on_lost()
        if not self.answered.done():
            self.answered.set_exception(ConnectionError("the peer closed without answering"))
            self.answered.exception()  # retrieved here: nobody may be waiting for it

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
        if self._kind == BATCHES:
            self._violation(Reject.MALFORMED, f"{len(data)} bytes on a one-way batch stream")
            return
        if self.answered.done():
            return  # the answer is whole; the peer closes next
        self._received += data
        if len(self._received) < LENGTH:
            return
        size = int.from_bytes(self._received[:LENGTH], "big")
        if size > MAX_ANSWER:
            self._violation(Reject.OVERSIZED, f"a {size} byte answer announced")
        elif size == 0:
            self._violation(Reject.MALFORMED, "an empty answer")
        elif len(self._received) >= LENGTH + size:
            self.answered.set_result(bytes(self._received[LENGTH : LENGTH + size]))
            self._received = bytearray()

    def _violation(self, reason: Reject, what: str) -> None:
        self._stats.reject(reason, f"from {self._address} (dialled): {what}")
        error = ConnectionError(f"{self._address} does not speak the wire: {what}")
        if not self.answered.done():
            self.answered.set_exception(error)
            self.answered.exception()
        self.abort()

    def send(self, data: bytes) -> None:
        if self._closed is not None or self._transport is None:
            raise ConnectionError(f"connection closed ({self._closed})")
        self._transport.write(data)

    def writable(self) -> bool:
        return self._closed is None and self._transport is not None and self._drained is None

    def try_write(self, frame: bytes) -> bool:
        """Write the frame now unless the socket's buffer is above its high mark."""
        if self._closed is not None or self._transport is None:
            raise ConnectionError(f"connection closed ({self._closed})")
        if self._drained is not None:
            return False
        self._transport.write(len(frame).to_bytes(LENGTH, "big") + frame)
        return True

    async def write(self, frame: bytes) -> None:
        async with asyncio.timeout(self._write_timeout):
            while self._drained is not None:
                await self._drained
        if not self.try_write(frame):
            raise ConnectionError("connection paused again at once")

    def end(self) -> None:
        """The end of a snapshot stream: a half-close, or on TLS an empty frame."""
        transport = self._transport
        if transport is None:
            raise ConnectionError(f"connection closed ({self._closed})")
        if transport.can_write_eof():
            transport.write_eof()
        else:
            transport.write(bytes(LENGTH))

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class _SnapshotClient:
    def __init__(self, connection: _ClientConnection, answer_timeout: float) -> None:
        self._connection = connection
        self._answer_timeout = answer_timeout

    async def write(self, frame: bytes) -> None:
        if not frame:
            raise ValueError("an empty snapshot frame would read as the end of the stream")
        await self._connection.write(frame)

    async def finish(self) -> int:
        try:
            self._connection.end()
            async with asyncio.timeout(self._answer_timeout):
                answer = await self._connection.answered
        finally:
            await self._connection.close()
        if answer[:1] == bytes((ANSWER_OK,)):
            try:
                received: int = pb.Ack.FromString(answer[1:]).received
            except DecodeError:
                raise ConnectionError("the peer answered the snapshot with garbage") from None
            return received
        reason = answer[1:].decode("utf-8", "replace")
        raise ConnectionError(f"snapshot refused by the peer: {reason}")

    async def abort(self) -> None:
        self._connection.abort()


__all__ = ["BATCHES", "IDENTIFY", "SNAPSHOT", "TCP_WIRE_VERSION", "TcpTransport"]
