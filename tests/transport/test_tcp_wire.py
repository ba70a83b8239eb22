"""The TCP transport's wire, spoken by hand by hostile or broken peers.

Each bad connection is refused and counted, and the transport keeps serving an
honest peer (of the same kind) afterwards; a correct hand-built connection is
delivered exactly as the transport's own sender's would be.
"""

from __future__ import annotations

import asyncio
import os

from transport_kit import DEPLOYMENT, Recorder, eventually, heartbeat, make, run

from protos import raft_pb2 as pb
from transport import Reject, TcpTransport
from transport.base import BaseTransport
from transport.frames import BIN_VERSION
from transport.tcp_transport import BATCHES, SNAPSHOT, frame_bytes, preamble

SMALL = 64 * 1024


class Server:
    def __init__(self) -> None:
        self.hb = Recorder(hosted={(1, 2)})
        self.b: BaseTransport = make(
            "tcp", self.hb, max_message_size=SMALL, snapshot_chunk_size=1024
        )
        self.a: BaseTransport = make(
            "tcp", Recorder(), max_message_size=SMALL, snapshot_chunk_size=1024
        )
        self.a.registry.add(1, 2, self.b.config.raft_address)
        host, port = self.b.config.raft_address.rsplit(":", 1)
        self.host, self.port = host, int(port)

    async def __aenter__(self) -> Server:
        await self.b.start()
        await self.a.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.a.close()
        await self.b.close()

    async def still_serves(self) -> None:
        before = len(self.hb.messages)
        self.a.send([heartbeat(term=4321)])
        await eventually(lambda: len(self.hb.messages) == before + 1, what="the honest peer")

    async def send_raw(self, data: bytes) -> bytes:
        """Write `data` on a new connection; what the server sent before hanging up."""
        reader, writer = await asyncio.open_connection(self.host, self.port)
        writer.write(data)
        await writer.drain()
        got = b""
        try:
            async with asyncio.timeout(5):
                while chunk := await reader.read(65536):
                    got += chunk
        except (ConnectionResetError, TimeoutError):
            pass
        writer.close()
        return got


def batch(*messages: pb.Message) -> bytes:
    return pb.MessageBatch(
        deployment_id=DEPLOYMENT, source_address="x:1", bin_ver=BIN_VERSION, requests=messages
    ).SerializeToString()


def test_the_transport_is_exported_and_reports_its_port() -> None:
    async def main() -> None:
        async with Server() as s:
            assert isinstance(s.b, TcpTransport) and s.b.port == s.port

    run("uvloop", main)


def test_a_hand_built_connection_is_delivered_frame_by_frame() -> None:
    async def main() -> None:
        async with Server() as s:
            _, writer = await asyncio.open_connection(s.host, s.port)
            data = preamble(BATCHES) + frame_bytes(batch(heartbeat(term=1)))
            data += frame_bytes(batch(heartbeat(term=2), heartbeat(term=3)))
            for i in range(len(data)):  # one byte at a time: frames cut anywhere
                writer.write(data[i : i + 1])
                await writer.drain()
            await eventually(lambda: len(s.hb.messages) == 3, what="three heartbeats")
            assert [m.term for m in s.hb.messages] == [1, 2, 3]
            writer.close()
            await s.still_serves()

    run("uvloop", main)


def test_a_connection_with_a_foreign_preamble_is_closed_and_counted() -> None:
    async def main() -> None:
        async with Server() as s:
            for junk in (
                os.urandom(64),
                b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",  # a gRPC client's first bytes
                b"NHRAFT\x01\x07" + frame_bytes(batch(heartbeat())),  # an unknown stream kind
            ):
                assert await s.send_raw(junk) == b""
            assert s.b.stats.rejected[Reject.MALFORMED] == 4
            assert s.hb.messages == []
            await s.still_serves()

    run("uvloop", main)


def test_another_wire_version_is_refused() -> None:
    async def main() -> None:
        async with Server() as s:
            await s.send_raw(b"NHRAFT\x02\x01" + frame_bytes(batch(heartbeat())))
            assert s.b.stats.rejected == {Reject.WRONG_VERSION: 1}
            assert s.hb.messages == []
            await s.still_serves()

    run("uvloop", main)


def test_oversized_frames_are_counted_and_a_huge_length_ends_the_connection() -> None:
    async def main() -> None:
        async with Server() as s:
            over = batch(heartbeat(term=9)) + b"\x0a" + b"\x00" * SMALL  # within the slack
            data = preamble(BATCHES) + frame_bytes(over) + frame_bytes(batch(heartbeat(term=1)))
            _, writer = await asyncio.open_connection(s.host, s.port)
            writer.write(data)
            await eventually(lambda: len(s.hb.messages) == 1, what="the frame after it")
            assert s.b.stats.rejected == {Reject.OVERSIZED: 1}
            writer.close()
            # Announcing 4 GiB: refused before a byte of it is buffered.
            await s.send_raw(preamble(BATCHES) + b"\xff\xff\xff\xff" + b"x" * 100)
            assert s.b.stats.rejected == {Reject.OVERSIZED: 2}
            await s.still_serves()

    run("uvloop", main)


def test_a_snapshot_stream_that_ends_early_gets_a_refusal_answer() -> None:
    async def main() -> None:
        async with Server() as s:
            reader, writer = await asyncio.open_connection(s.host, s.port)
            writer.write(preamble(SNAPSHOT) + frame_bytes(b"\x08\x01garbage"))
            writer.write_eof()
            async with asyncio.timeout(10):
                answer = await reader.read()
            writer.close()
            size = int.from_bytes(answer[:4], "big")
            assert size == len(answer) - 4 and answer[4] == 1  # status 1: refused
            assert s.hb.snapshots == []
            await s.still_serves()

    run("uvloop", main)
