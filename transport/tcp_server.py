"""The receiving end of the TCP transport: accepted connections, as guarded as gRPC's.

Rules (every peer is treated as hostile):
- At most `MAX_CONNECTIONS` accepted connections at once; one more is closed at once
  and counted (busy). With mutual TLS, the handshake requires a certificate of the
  deployment's CA, and a connection without a verified one is closed and counted.
- A connection completes its preamble, and an Identify stream its one frame, within
  connect_timeout of opening; a frame once begun must keep arriving: no byte for
  write_timeout while a frame is incomplete closes the connection (counted as
  incomplete). An idle batch stream between frames stays open (quiesced shards send
  nothing for long); TCP keepalive closes one whose peer vanished.
- An announced length above max_message_size + SLACK closes the connection before a
  byte of that frame is buffered, so a connection holds at most one frame.
- Frames of a batch stream are delivered on the loop as they arrive, synchronously:
  no task, queue or future per frame.
- A snapshot stream's frames go through a small queue; reading pauses while it is
  full, and the inbox's own chunk timeout drops a stalled transfer. Bytes after the end
  of a snapshot or Identify stream close it: the peer does not speak the wire.
- Nothing here raises into the loop: a bad input costs a counter and its connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import cast

from protos import raft_pb2 as pb
from transport.config import TransportConfig
from transport.snapshot_recv import SnapshotRejected
from transport.stats import Reject, TransportStats
from transport.tcp_wire import (
    ANSWER_OK,
    ANSWER_REFUSED,
    BATCHES,
    IDENTIFY,
    KINDS,
    LENGTH,
    PREAMBLE,
    PREAMBLE_SIZE,
    SLACK,
    SNAPSHOT,
    TCP_WIRE_VERSION,
    answer_bytes,
    keep_alive,
)

# Connections served at once: one per peer NodeHost plus snapshot transfers and
# Identify calls (gRPC's transport allows as many streams); more is a flood.
MAX_CONNECTIONS = 1024
# Snapshot chunks buffered before the connection stops reading.
_SNAPSHOT_BUFFER = 4
_SWEEP_INTERVAL = 0.25  # seconds between two checks for stalled connections

ReceiveSnapshot = Callable[[AsyncIterator[bytes]], Awaitable[int]]
Identify = Callable[[bytes], tuple[int, bytes]]


class Listener:
    """The accepted connections of one TcpTransport, and the timer that finds the
    stalled ones."""

    def __init__(
        self,
        config: TransportConfig,
        stats: TransportStats,
        on_frame: Callable[[bytes], None],
        receive_snapshot: ReceiveSnapshot,
        identify: Identify,
        tls: bool,
    ) -> None:
        self.stats = stats
        self.on_frame = on_frame
        self.receive_snapshot = receive_snapshot
        self.identify = identify
        self.tls = tls
        self.frame_limit = config.max_message_size + SLACK
        self.connect_timeout = config.connect_timeout
        self.write_timeout = config.write_timeout
        self.max_connections = MAX_CONNECTIONS
        self.connections: set[InboundConnection] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def protocol(self) -> InboundConnection:
        return InboundConnection(self)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._timer = self._loop.call_later(_SWEEP_INTERVAL, self._sweep)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for connection in list(self.connections):
            connection.abort()

    def _sweep(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        for connection in list(self.connections):
            connection.check(now, _SWEEP_INTERVAL)
        self._timer = self._loop.call_later(_SWEEP_INTERVAL, self._sweep)


class InboundConnection(asyncio.Protocol):
    """One accepted connection: the preamble, then frames to inbound.py (batches), to a
    snapshot transfer, or to one Identify answer."""

    def __init__(self, listener: Listener) -> None:
        self._listener = listener
        self._buffer = bytearray()
        self._kind = 0
        self._transport: asyncio.Transport | None = None
        self._frames: asyncio.Queue[bytes | None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._paused = False
        self._ended = False  # the stream's last frame came: more bytes are a violation
        self._opened = 0.0
        self._heard = True  # bytes arrived since the last sweep
        self._quiet = 0.0  # seconds without a byte, as the sweeps counted them

    # ---------------------------------------------------------------- lifecycle

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self._transport = cast(asyncio.Transport, transport)
        listener = self._listener
        self._opened = asyncio.get_running_loop().time()
        if len(listener.connections) >= listener.max_connections:
            self._refuse(Reject.BUSY, f"{len(listener.connections)} connections already open")
            return
        if listener.tls and not transport.get_extra_info("peercert"):
            self._refuse(Reject.NO_PEER_CERT, "no verified client certificate")
            return
        keep_alive(transport)
        listener.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._listener.connections.discard(self)
        if self._frames is not None and not self._ended:
            self._frames.put_nowait(None)
        self._transport = None

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()
            self._transport = None
        if self._task is not None:
            self._task.cancel()

    def eof_received(self) -> bool | None:
        if self._kind == SNAPSHOT and not self._ended:
            self._end_snapshot()
            return True  # keep the socket open for the answer
        return None

    def check(self, now: float, interval: float) -> None:
        """Called by the listener's sweep: close the connection if it stalled."""
        if self._heard:
            self._heard = False
            self._quiet = 0.0
            return
        self._quiet += interval
        listener = self._listener
        if not self._kind or (self._kind == IDENTIFY and not self._ended):
            if now - self._opened >= listener.connect_timeout:
                what = "Identify frame" if self._kind else "preamble"
                self._refuse(
                    Reject.INCOMPLETE, f"no complete {what} in {listener.connect_timeout} s"
                )
        elif self._buffer and not self._paused and self._quiet >= listener.write_timeout:
            self._refuse(
                Reject.INCOMPLETE,
                f"a frame stalled for {listener.write_timeout} s "
                f"({len(self._buffer)} bytes of it received)",
            )

    def _refuse(self, reason: Reject, what: str) -> None:
        transport = self._transport
        peer = None if transport is None else transport.get_extra_info("peername")
        self._listener.stats.reject(reason, f"connection from {peer}: {what}")
        self.abort()

    # ---------------------------------------------------------------- bytes in

    def data_received(self, data: bytes) -> None:
        self._heard = True
        if self._transport is None:
            return
        if self._ended:
            self._refuse(Reject.MALFORMED, "bytes after the end of its stream")
            return
        buffer = self._buffer
        if not self._kind:
            buffer += data
            if not self._read_preamble():
                return
            if not buffer:
                return
        elif buffer:
            buffer += data
        else:
            # The common case: whole frames in one read, parsed without a copy of them
            # into the buffer first.
            used = self._frames_in(data)
            if used < len(data) and self._transport is not None and not self._ended:
                buffer += memoryview(data)[used:]
            elif used < len(data) and self._ended:
                self._refuse(Reject.MALFORMED, "bytes after the end of its stream")
            return
        used = self._frames_in(buffer)
        if self._transport is None:
            return
        if used:
            del buffer[:used]
        if buffer and self._ended:
            self._refuse(Reject.MALFORMED, "bytes after the end of its stream")

    def _frames_in(self, data: bytes | bytearray) -> int:
        """Deliver every whole frame in `data`; how many bytes they took."""
        limit = self._listener.frame_limit
        deliver = self._listener.on_frame if self._kind == BATCHES else self._control_frame
        start = 0
        end = len(data)
        while end - start >= LENGTH:
            size = int.from_bytes(data[start : start + LENGTH], "big")
            if size > limit:
                self._refuse(Reject.OVERSIZED, f"{size} byte frame announced, limit {limit}")
                return start
            stop = start + LENGTH + size
            if stop > end:
                break
            frame = bytes(data[start + LENGTH : stop])
            start = stop
            deliver(frame)
            if self._transport is None or self._ended:
                break  # refused while delivering, or the stream's last frame
        return start

    def _read_preamble(self) -> bool:
        buffer = self._buffer
        if len(buffer) < PREAMBLE_SIZE:
            if not PREAMBLE.startswith(bytes(buffer[: len(PREAMBLE)])):
                self._refuse(Reject.MALFORMED, f"opened with {bytes(buffer[:16])!r}")
            return False
        head = bytes(buffer[:PREAMBLE_SIZE])
        del buffer[:PREAMBLE_SIZE]
        version, kind = head[len(PREAMBLE)], head[len(PREAMBLE) + 1]
        if head[: len(PREAMBLE)] != PREAMBLE or kind not in KINDS:
            self._refuse(Reject.MALFORMED, f"opened with {head!r}")
            return False
        if version != TCP_WIRE_VERSION:
            self._refuse(Reject.WRONG_VERSION, f"TCP wire version {version}")
            return False
        self._kind = kind
        if kind == SNAPSHOT:
            self._frames = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._receive_snapshot())
        return True

    def _control_frame(self, frame: bytes) -> None:
        if self._kind == IDENTIFY:
            self._ended = True
            status, body = self._listener.identify(frame)
            self._answer(status, body)
            return
        assert self._frames is not None and self._transport is not None
        if not frame:  # TLS's end of stream (no half-close there)
            self._end_snapshot()
            return
        self._frames.put_nowait(frame)
        if self._frames.qsize() >= _SNAPSHOT_BUFFER and not self._paused:
            self._paused = True
            self._transport.pause_reading()

    # ---------------------------------------------------------------- snapshots

    def _end_snapshot(self) -> None:
        assert self._frames is not None
        self._ended = True
        self._frames.put_nowait(None)

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
        listener = self._listener
        try:
            count = await listener.receive_snapshot(self._chunks())
        except SnapshotRejected as e:
            self._answer(ANSWER_REFUSED, str(e).encode("utf-8", "replace"))
            return
        except asyncio.CancelledError:
            raise
        except Exception as e:  # counted and logged by the inbox
            self._answer(ANSWER_REFUSED, f"receiver failed: {e}".encode("utf-8", "replace"))
            return
        listener.stats.snapshots_received += 1
        self._answer(ANSWER_OK, pb.Ack(received=count).SerializeToString())

    def _answer(self, status: int, body: bytes) -> None:
        transport = self._transport
        if transport is None:
            return
        transport.write(answer_bytes(status, body))
        transport.close()


__all__ = ["MAX_CONNECTIONS", "InboundConnection", "Listener"]
