"""The transport between NodeHosts: grpc.aio, raw bytes in and out.

Rules:
- The RPCs are registered as generic handlers on raw bytes, so every frame reaches our
  own checks (inbound.py, snapshot_recv.py): a malformed one is counted and dropped
  while the stream goes on, instead of gRPC failing the stream for us.
- gRPC's own size limit is set a little above max_message_size, so frames up to it
  reach our check (counted as oversized) and nothing much bigger is ever buffered.
  Bigger frames end their stream inside gRPC; the sender reconnects.
- Each connection attempt gets a fresh channel with a private subchannel pool, so a
  restarted peer is dialled at once instead of after gRPC's own hidden back-off.
- SO_REUSEPORT is off: a second NodeHost on a taken port gets BindError, not half the
  traffic.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from protos import raft_pb2 as pb
from transport.base import BaseTransport, Stream
from transport.config import MiB, TransportConfig
from transport.errors import BindError
from transport.frames import BATCH_METHOD, IDENTIFY_METHOD, SERVICE, SNAPSHOT_METHOD, ack
from transport.interface import TransportHandler
from transport.snapshot_recv import SnapshotRejected
from transport.snapshot_send import SnapshotStream
from transport.stats import Reject
from transport.tls import Credentials, has_peer_certificate

_GRPC_SLACK = 1 * MiB  # gRPC's hard limit sits this far above ours
# Streams served at once: one per peer NodeHost plus snapshot transfers; more is a flood.
_MAX_CONCURRENT_RPCS = 1024


class GrpcTransport(BaseTransport):
    def __init__(self, config: TransportConfig, handler: TransportHandler) -> None:
        super().__init__(config, handler)
        self._credentials = Credentials(config) if config.mutual_tls else None
        self._server: grpc.aio.Server | None = None
        self.port = 0  # the bound port, once started
        limit = config.max_message_size + _GRPC_SLACK
        self._channel_options: list[tuple[str, Any]] = [
            ("grpc.max_send_message_length", limit),
            ("grpc.max_receive_message_length", limit),
            ("grpc.use_local_subchannel_pool", 1),
            ("grpc.enable_retries", 0),
            ("grpc.keepalive_time_ms", 10_000),
            ("grpc.keepalive_timeout_ms", 5_000),
            ("grpc.keepalive_permit_without_calls", 1),
            # Keep pinging a quiet connection (quiesced shards send nothing for long).
            ("grpc.http2.max_pings_without_data", 0),
        ]
        self._server_options: list[tuple[str, Any]] = [
            ("grpc.max_send_message_length", limit),
            ("grpc.max_receive_message_length", limit),
            ("grpc.so_reuseport", 0),
            # Accept the peers' 10 s keepalive pings on a connection with no data (the
            # default expects 5 minutes and answers GOAWAY "too_many_pings", which
            # tore down the connections of hosts whose shards were all quiesced).
            ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
            ("grpc.keepalive_permit_without_calls", 1),
        ]

    # ------------------------------------------------------------------ serving

    async def _serve(self) -> None:
        server = grpc.aio.server(
            options=self._server_options, maximum_concurrent_rpcs=_MAX_CONCURRENT_RPCS
        )
        handlers = grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "SendBatches": grpc.stream_unary_rpc_method_handler(self._serve_batches),
                "SendSnapshot": grpc.stream_unary_rpc_method_handler(self._serve_snapshot),
                "Identify": grpc.unary_unary_rpc_method_handler(self._serve_identify),
            },
        )
        server.add_generic_rpc_handlers((handlers,))
        address = self.config.bind_address
        try:
            if self._credentials is not None:
                port = server.add_secure_port(address, self._credentials.server)
            else:
                port = server.add_insecure_port(address)
        except RuntimeError as e:
            raise BindError(f"cannot listen on {address}: {e}") from None
        if not port:
            raise BindError(f"cannot listen on {address}")
        await server.start()
        self._server = server
        self.port = port

    async def _stop_serving(self) -> None:
        if self._server is not None:
            await self._server.stop(grace=0.2)
            self._server = None

    def _authenticated(self, context: grpc.aio.ServicerContext) -> bool:
        if self._credentials is None or has_peer_certificate(context):
            return True
        self.stats.reject(Reject.NO_PEER_CERT, f"stream from {context.peer()}")
        return False

    async def _serve_batches(
        self, frames: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> bytes:
        if not self._authenticated(context):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "no client certificate")
        count = 0
        on_frame = self._inbound.on_frame
        async for frame in frames:
            on_frame(frame)
            count += 1
        return ack(count)

    async def _serve_snapshot(
        self, frames: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> bytes:
        if not self._authenticated(context):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "no client certificate")
        try:
            count = await self._snapshot_inbox.receive(aiter(frames))
        except SnapshotRejected as e:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(e))
        self.stats.snapshots_received += 1
        return ack(count)

    async def _serve_identify(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        if not self._authenticated(context):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "no client certificate")
        if self.hosts is None:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, "this NodeHost addresses hosts by host:port"
            )
        assert self.hosts is not None
        hello = pb.HostHello()
        try:
            hello.ParseFromString(request)
        except DecodeError:
            self.stats.reject(Reject.MALFORMED, f"Identify from {context.peer()}")
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "not a HostHello")
        if hello.deployment_id != self.config.deployment_id:
            self.stats.reject(Reject.WRONG_DEPLOYMENT, f"Identify from {context.peer()}")
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "another deployment")
        return self.hosts.on_hello(hello).SerializeToString()

    # ------------------------------------------------------------------ dialling

    async def _identify(self, address: str, hello: pb.HostHello, timeout: float) -> pb.HostHello:
        async with asyncio.timeout(timeout):
            channel = await self._channel(address)
            try:
                call = channel.unary_unary(IDENTIFY_METHOD)
                raw = await call(hello.SerializeToString(), timeout=timeout)
            finally:
                await channel.close()
        answer = pb.HostHello()
        answer.ParseFromString(raw)
        return answer

    async def _channel(self, address: str) -> grpc.aio.Channel:
        """A new channel to `address`, READY; raises as soon as gRPC gives up on it."""
        if self._credentials is not None:
            channel = grpc.aio.secure_channel(
                address, self._credentials.channel, options=self._channel_options
            )
        else:
            channel = grpc.aio.insecure_channel(address, options=self._channel_options)
        try:
            state = channel.get_state(try_to_connect=True)
            while state is not grpc.ChannelConnectivity.READY:
                if state in (
                    grpc.ChannelConnectivity.TRANSIENT_FAILURE,
                    grpc.ChannelConnectivity.SHUTDOWN,
                ):
                    raise ConnectionError(f"cannot connect to {address} ({state.name})")
                await channel.wait_for_state_change(state)
                state = channel.get_state(try_to_connect=True)
        except BaseException:
            await channel.close()
            raise
        return channel

    async def _connect(self, address: str) -> Stream:
        channel = await self._channel(address)
        return _GrpcStream(channel, channel.stream_unary(BATCH_METHOD)())

    async def _open_snapshot(self, address: str) -> SnapshotStream:
        channel = await self._channel(address)
        return _GrpcSnapshotStream(channel, channel.stream_unary(SNAPSHOT_METHOD)())


class _GrpcStream:
    def __init__(self, channel: grpc.aio.Channel, call: grpc.aio.StreamUnaryCall) -> None:
        self._channel = channel
        self._call = call

    async def write(self, frame: bytes) -> None:
        try:
            await self._call.write(frame)
        except asyncio.InvalidStateError:
            # grpc.aio's way of saying the stream already ended: the peer closed it.
            code = self._call.code() if self._call.done() else None
            raise ConnectionError(f"stream closed by the peer ({await _status(code)})") from None

    async def close(self) -> None:
        self._call.cancel()
        await self._channel.close()


async def _status(code: object) -> str:
    if code is None:
        return "no status"
    if asyncio.iscoroutine(code) or isinstance(code, asyncio.Future):
        code = await code
    return str(getattr(code, "name", code))


class _GrpcSnapshotStream:
    def __init__(self, channel: grpc.aio.Channel, call: grpc.aio.StreamUnaryCall) -> None:
        self._channel = channel
        self._call = call

    async def write(self, frame: bytes) -> None:
        await self._call.write(frame)

    async def finish(self) -> int:
        try:
            await self._call.done_writing()
            received: int = pb.Ack.FromString(await self._call).received
            return received
        finally:
            await self._channel.close()

    async def abort(self) -> None:
        self._call.cancel()
        await asyncio.shield(self._channel.close())
