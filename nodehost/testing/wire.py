"""Speak a NodeHost's Raft port directly, with raw frames, as a broken or hostile peer.

    from nodehost.testing.wire import batch, send_frames
    send_frames("127.0.0.1:63001", [batch([message], deployment_id=0)])

Nothing here checks what it sends: that is the point. Use it to test that a cluster
shrugs off what a peer should never send (scripts/hostile_peer.py does, at length).

Rules: every call is bounded by its timeout; a channel is opened per call and closed
before it returns, so nothing is left running.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

import grpc

from protos import raft_pb2 as pb
from transport.frames import BATCH_METHOD, BIN_VERSION, SNAPSHOT_METHOD
from transport.snapshot_send import stream_snapshot

# gRPC's own cap, far above any NodeHost's limit, so oversized frames reach the peer.
_OPTIONS = [("grpc.max_send_message_length", 512 * 1024 * 1024)]


def batch(
    messages: Sequence[pb.Message],
    deployment_id: int = 0,
    source_address: str = "hostile:1",
    bin_ver: int = BIN_VERSION,
) -> bytes:
    """One MessageBatch frame."""
    return pb.MessageBatch(
        deployment_id=deployment_id,
        source_address=source_address,
        bin_ver=bin_ver,
        requests=messages,
    ).SerializeToString()


async def write_frames(
    address: str, method: str, frames: Iterable[bytes], timeout: float = 30.0
) -> bytes:
    """Write `frames` on one stream of `method`; return the peer's answer. Raises
    grpc.aio.AioRpcError when the peer ends the stream (a refused snapshot, say)."""
    async with asyncio.timeout(timeout):
        channel = grpc.aio.insecure_channel(address, options=_OPTIONS)
        try:
            call = channel.stream_unary(method)()
            for frame in frames:
                await call.write(frame)
            await call.done_writing()
            answer: bytes = await call
            return answer
        finally:
            await channel.close()


def send_frames(address: str, frames: Iterable[bytes], timeout: float = 30.0) -> int:
    """Send MessageBatch frames on one stream from a thread; return how many the peer
    read (it reads every frame, good or bad, and checks each itself)."""
    answer = asyncio.run(write_frames(address, BATCH_METHOD, frames, timeout))
    return pb.Ack.FromString(answer).received


def send_snapshot_frames(address: str, frames: Iterable[bytes], timeout: float = 30.0) -> str:
    """Send SnapshotChunk frames on one stream; return "accepted" or the status the
    peer ended the stream with."""
    try:
        asyncio.run(write_frames(address, SNAPSHOT_METHOD, frames, timeout))
    except grpc.aio.AioRpcError as exc:
        return f"{exc.code().name}: {exc.details()}"
    return "accepted"


class _Capture:
    """A snapshot stream that keeps the frames instead of sending them."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    async def write(self, frame: bytes) -> None:
        self.frames.append(frame)

    async def finish(self) -> int:
        return len(self.frames)

    async def abort(self) -> None:
        pass


def snapshot_frames(
    message: pb.Message, deployment_id: int = 0, chunk_size: int = 64 * 1024
) -> list[bytes]:
    """The SnapshotChunk frames the transport would send for `message` (an
    INSTALL_SNAPSHOT whose snapshot names local files), checksums and all."""

    async def capture() -> list[bytes]:
        stream = _Capture()
        with ThreadPoolExecutor(1) as io:
            await stream_snapshot(
                message,
                deployment_id=deployment_id,
                source_address="hostile:1",
                chunk_size=chunk_size,
                stream=stream,
                io=io,
            )
        return stream.frames

    return asyncio.run(capture())
