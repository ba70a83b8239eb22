"""Hostile and broken peers against a live gRPC transport.

Each one is refused (counted where our code can see it, logged), changes nothing, and
the server keeps serving every other peer.
"""

from __future__ import annotations

import asyncio
import os
import socket

import grpc
import pytest
from transport_kit import (
    DEPLOYMENT,
    Recorder,
    address,
    eventually,
    heartbeat,
    make,
    raw_stream,
    run,
    settle,
)

from protos import raft_pb2 as pb
from transport import Reject
from transport.base import BaseTransport
from transport.frames import BATCH_METHOD, BIN_VERSION, SNAPSHOT_METHOD

SMALL = {"max_message_size": 64 * 1024, "snapshot_chunk_size": 1024}


class Server:
    """B, the transport under attack, and A, an honest peer that must keep getting through."""

    def __init__(self, **kw: object) -> None:
        self.hb = Recorder(hosted={(1, 2)})
        self.b: BaseTransport = make("grpc", self.hb, **kw)
        self.a: BaseTransport = make("grpc", Recorder(), **kw)
        self.a.registry.add(1, 2, self.b.config.raft_address)
        self.target = self.b.config.raft_address

    async def start(self) -> Server:
        await self.b.start()
        await self.a.start()
        return self

    async def close(self) -> None:
        await self.a.close()
        await self.b.close()

    async def still_serves(self) -> None:
        before = len(self.hb.messages)
        self.a.send([heartbeat(term=1234)])
        await eventually(lambda: len(self.hb.messages) == before + 1, what="the honest peer")
        assert self.hb.messages[-1].term == 1234


def batch(*messages: pb.Message, deployment_id: int = DEPLOYMENT) -> bytes:
    return pb.MessageBatch(
        deployment_id=deployment_id, source_address="x:1", bin_ver=BIN_VERSION, requests=messages
    ).SerializeToString()


def attack(body: object, **kw: object) -> None:
    async def main() -> None:
        s = await Server(**kw).start()
        try:
            await body(s)  # type: ignore[operator]
            await s.still_serves()
        finally:
            await s.close()

    run("uvloop", main)


def test_garbage_bytes_on_the_raw_port() -> None:
    async def body(s: Server) -> None:
        host, port = s.target.rsplit(":", 1)
        payloads = [
            os.urandom(4096),
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + os.urandom(2048),  # HTTP/2 preface, then junk
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\xff\xff\xff\x00\x00\x00\x00\x00\x01",  # huge frame
        ]
        for payload in payloads:
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(payload)
            await writer.drain()
            try:  # the server hangs up on it (or answers an error and then hangs up)
                async with asyncio.timeout(5):
                    while await reader.read(65536):
                        pass
            except ConnectionResetError:
                pass
            writer.close()
        await settle()
        assert s.hb.messages == []

    attack(body)


def test_a_half_open_connection_does_not_block_others() -> None:
    async def body(s: Server) -> None:
        host, port = s.target.rsplit(":", 1)
        idle = socket.create_connection((host, int(port)))  # connects, says nothing
        try:
            await s.still_serves()
        finally:
            idle.close()

    attack(body)


def test_malformed_frames_are_dropped_and_the_stream_goes_on() -> None:
    async def body(s: Server) -> None:
        good = batch(heartbeat(term=1))
        frames = [
            good,
            b"\xff\xff\xff\xff",
            batch(heartbeat(term=2)),
            good[:-4],
            b"",
            batch(heartbeat(term=3)),
        ]
        ack = pb.Ack.FromString(await raw_stream(s.target, BATCH_METHOD, frames))
        assert ack.received == len(frames)
        assert [m.term for m in s.hb.messages] == [1, 2, 3]
        # b"" decodes as an empty batch of deployment 0: the wrong deployment.
        assert s.b.stats.rejected == {Reject.MALFORMED: 2, Reject.WRONG_DEPLOYMENT: 1}

    attack(body)


def test_frames_above_max_message_size() -> None:
    async def body(s: Server) -> None:
        over = batch(heartbeat(term=9)) + b"\x0a" + b"\x00" * (64 * 1024)
        frames = [over, batch(heartbeat(term=1))]
        await raw_stream(s.target, BATCH_METHOD, frames)
        assert [m.term for m in s.hb.messages] == [1]
        assert s.b.stats.rejected == {Reject.OVERSIZED: 1}
        # Far above: gRPC's own cap ends that stream before anything is buffered for us.
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await raw_stream(s.target, BATCH_METHOD, [b"\x0a" * (3 * 1024 * 1024)])
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

    attack(body, **SMALL)


def test_another_deployment_is_refused() -> None:
    async def body(s: Server) -> None:
        stranger = make("grpc", Recorder(), deployment_id=DEPLOYMENT + 1)
        await stranger.start()
        stranger.registry.add(1, 2, s.target)
        try:
            stranger.send([heartbeat(), heartbeat()])
            await eventually(lambda: s.b.stats.rejected == {Reject.WRONG_DEPLOYMENT: 1})
            assert s.hb.messages == []
        finally:
            await stranger.close()

    attack(body)


def test_unknown_shards_replicas_and_local_types_from_the_wire() -> None:
    async def body(s: Server) -> None:
        tick = heartbeat()
        tick.type = pb.LOCAL_TICK
        await raw_stream(
            s.target,
            BATCH_METHOD,
            [batch(heartbeat(shard_id=77), heartbeat(to=9), tick, heartbeat(term=4))],
        )
        assert [m.term for m in s.hb.messages] == [4]
        assert s.b.stats.rejected == {Reject.NOT_HOSTED: 2, Reject.LOCAL_TYPE: 1}

    attack(body)


def test_garbage_snapshot_streams_are_refused() -> None:
    async def body(s: Server) -> None:
        for frames in (
            [b"\xff\xff garbage"],
            [],
            [pb.SnapshotChunk(shard_id=1).SerializeToString()],
        ):
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await raw_stream(s.target, SNAPSHOT_METHOD, frames)
            assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert s.b.stats.rejected == {
            Reject.MALFORMED: 1,
            Reject.INCOMPLETE: 1,
            Reject.WRONG_DEPLOYMENT: 1,
        }
        assert s.hb.snapshots == []

    attack(body)


def test_an_unknown_method_is_unimplemented() -> None:
    async def body(s: Server) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as e:
            # No frames: a write racing the server's immediate answer can end the call
            # as INTERNAL (a reset stream) instead of carrying the server's status.
            await raw_stream(s.target, "/nodehost.raft.Raft/Nope", [])
        assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED

    attack(body)


def test_nothing_listening_is_not_an_attack() -> None:
    """A raw client to a closed port fails on its side; nothing to count on ours."""

    async def main() -> None:
        with pytest.raises(grpc.aio.AioRpcError):
            await raw_stream(address(), BATCH_METHOD, [b"x"])

    run("asyncio", main)
