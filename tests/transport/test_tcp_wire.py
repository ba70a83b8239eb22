"""The TCP transport's wire, spoken by hand by hostile or broken peers.

Each bad connection is refused and counted, and the transport keeps serving an
honest peer (of the same kind) afterwards; a correct hand-built connection is
delivered exactly as the transport's own sender's would be.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import pytest
from transport_kit import (
    DEPLOYMENT,
    Recorder,
    config,
    eventually,
    heartbeat,
    install,
    make,
    raw_tcp,
    run,
    settle,
    tcp_answer,
)

from protos import raft_pb2 as pb
from transport import Reject, TcpTransport, tcp_server
from transport.base import BaseTransport
from transport.frames import BIN_VERSION
from transport.tcp_wire import BATCHES, IDENTIFY, SNAPSHOT, frame_bytes, preamble

SMALL = 64 * 1024


class Server:
    """B, the transport under attack, and A, an honest peer that must keep getting through."""

    def __init__(self, **kw: object) -> None:
        kw = {"max_message_size": SMALL, "snapshot_chunk_size": 1024, **kw}
        self.hb = Recorder(hosted={(1, 2)})
        self.b: BaseTransport = make("tcp", self.hb, **kw)
        self.a: BaseTransport = make("tcp", Recorder(), **kw)
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

    @property
    def target(self) -> str:
        return self.b.config.raft_address

    async def send_raw(self, data: bytes) -> bytes:
        """Write `data` on a new connection; what the server sent before hanging up
        (it must hang up: a timeout here fails the test)."""
        reader, writer = await asyncio.open_connection(self.host, self.port)
        writer.write(data)
        await writer.drain()
        got = b""
        try:
            async with asyncio.timeout(10):
                while chunk := await reader.read(65536):
                    got += chunk
        except ConnectionResetError:
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


def test_malformed_frames_are_dropped_and_the_stream_goes_on() -> None:
    async def main() -> None:
        async with Server() as s:
            good = batch(heartbeat(term=1))
            frames = [good, b"\xff\xff\xff\xff", batch(heartbeat(term=2)), good[:-4], b""]
            frames.append(batch(heartbeat(term=3)))
            assert await raw_tcp(s.target, BATCHES, frames) == b""  # one way: no answer
            assert [m.term for m in s.hb.messages] == [1, 2, 3]
            # b"" decodes as an empty batch of deployment 0: the wrong deployment.
            assert s.b.stats.rejected == {Reject.MALFORMED: 2, Reject.WRONG_DEPLOYMENT: 1}
            await s.still_serves()

    run("uvloop", main)


def test_a_connection_without_its_preamble_is_closed_after_connect_timeout() -> None:
    """A half-open connection (or one dribbling a preamble) holds nothing for long."""

    async def main() -> None:
        async with Server(connect_timeout=0.5) as s:
            silent = s.send_raw(b"")
            dribbled = s.send_raw(b"NHRA")  # a correct start, never finished
            began = asyncio.get_running_loop().time()
            await s.still_serves()  # meanwhile the honest peer is served
            assert await silent == b"" and await dribbled == b""
            assert asyncio.get_running_loop().time() - began < 5
            assert s.b.stats.rejected == {Reject.INCOMPLETE: 2}

    run("uvloop", main)


def test_a_frame_that_stops_arriving_closes_its_connection() -> None:
    async def main() -> None:
        async with Server(write_timeout=0.5) as s:
            frame = frame_bytes(batch(heartbeat(term=8)))
            stalled = preamble(BATCHES) + frame + frame[: len(frame) // 2]
            assert await s.send_raw(stalled) == b""  # closed by the server
            assert [m.term for m in s.hb.messages] == [8]  # the whole frame before it went in
            assert s.b.stats.rejected == {Reject.INCOMPLETE: 1}
            await s.still_serves()

    run("uvloop", main)


def test_an_idle_batch_stream_between_frames_stays_open() -> None:
    """Quiesced shards send nothing for long: quiet between frames is not a stall."""

    async def main() -> None:
        async with Server(write_timeout=0.3, connect_timeout=0.3) as s:
            reader, writer = await asyncio.open_connection(s.host, s.port)
            writer.write(preamble(BATCHES) + frame_bytes(batch(heartbeat(term=1))))
            await eventually(lambda: len(s.hb.messages) == 1, what="the first frame")
            await settle(1.0)  # several sweeps with nothing sent
            writer.write(frame_bytes(batch(heartbeat(term=2))))
            await eventually(lambda: len(s.hb.messages) == 2, what="a frame after the quiet")
            assert not reader.at_eof() and s.b.stats.rejected == {}
            writer.close()

    run("uvloop", main)


def test_connections_beyond_the_limit_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tcp_server, "MAX_CONNECTIONS", 4)

    async def main() -> None:
        async with Server() as s:
            await s.still_serves()  # the honest peer holds one connection
            held = []
            for _ in range(3):
                _, writer = await asyncio.open_connection(s.host, s.port)
                writer.write(preamble(BATCHES))
                held.append(writer)
            await eventually(lambda: len(s.b._listener.connections) == 4, what="4 connections")  # type: ignore[attr-defined]
            assert await s.send_raw(preamble(BATCHES)) == b""  # the fifth is closed at once
            assert s.b.stats.rejected == {Reject.BUSY: 1}
            await s.still_serves()  # and the honest one was never touched
            for writer in held:
                writer.close()

    run("uvloop", main)


def test_bytes_after_the_end_of_an_identify_or_snapshot_stream_close_it() -> None:
    async def main() -> None:
        async with Server() as s:
            # An Identify frame and then more: the answer may go out; then it is closed.
            hello = pb.HostHello(deployment_id=DEPLOYMENT, bin_ver=BIN_VERSION)
            await raw_tcp(s.target, IDENTIFY, [hello.SerializeToString(), b"more"], end=False)
            # A snapshot stream's TLS-style end marker (an empty frame), then more frames.
            await raw_tcp(s.target, SNAPSHOT, [b"", b"\x08\x01"], end=False)
            # Each hand-built stream is one small write: its extra bytes arrive with it.
            await eventually(lambda: s.b.stats.rejected[Reject.MALFORMED] == 2)
            assert s.hb.snapshots == []
            await s.still_serves()

    run("uvloop", main)


def test_identify_answers_only_well_formed_hellos_of_the_deployment() -> None:
    async def main() -> None:
        node_host_id = str(uuid.uuid4())
        handler = Recorder()
        cfg = config(address_by_node_host_id=True, node_host_id=node_host_id)
        b = TcpTransport(cfg, handler)
        plain = make("tcp", Recorder())  # addresses hosts by host:port
        await b.start()
        await plain.start()
        try:
            hello = pb.HostHello(
                deployment_id=DEPLOYMENT,
                bin_ver=BIN_VERSION,
                node_host_id=str(uuid.uuid4()),
                address="127.0.0.1:1",
            )
            status, body = tcp_answer(
                await raw_tcp(b.config.raft_address, IDENTIFY, [hello.SerializeToString()])
            )
            assert status == 0 and pb.HostHello.FromString(body).node_host_id == node_host_id
            for frame, reason in (
                (b"\xff\xff\xff", Reject.MALFORMED),
                (
                    pb.HostHello(deployment_id=DEPLOYMENT + 1).SerializeToString(),
                    Reject.WRONG_DEPLOYMENT,
                ),
            ):
                status, body = tcp_answer(await raw_tcp(b.config.raft_address, IDENTIFY, [frame]))
                assert status == 1 and body
                assert b.stats.rejected[reason] == 1
            status, body = tcp_answer(
                await raw_tcp(plain.config.raft_address, IDENTIFY, [hello.SerializeToString()])
            )
            assert (status, body) == (1, b"this NodeHost addresses hosts by host:port")
        finally:
            await plain.close()
            await b.close()

    run("uvloop", main)


class HostileServer:
    """A listener that accepts and then answers with `reply`; with `hold`, it then keeps
    the connection open whatever the dialler does (a frozen peer)."""

    def __init__(self, reply: bytes, hold: bool = False) -> None:
        self.reply = reply
        self.hold = hold
        self.accepted = 0
        self._handlers: list[asyncio.Task[None]] = []
        self._server: asyncio.Server | None = None
        self.address = ""

    async def __aenter__(self) -> HostileServer:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.accepted += 1
            self._handlers.append(asyncio.current_task())  # type: ignore[arg-type]
            await reader.readexactly(8)  # the preamble
            writer.write(self.reply)
            try:
                if self.hold:
                    await asyncio.sleep(60)  # cancelled when the server closes
                await reader.read()  # until the dialler hangs up
            except ConnectionResetError:
                pass
            writer.close()

        self._server = await asyncio.start_server(serve, "127.0.0.1", 0)
        self.address = f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)


def test_a_peer_that_writes_on_a_batch_stream_is_dropped_and_dialled_again() -> None:
    async def main() -> None:
        async with HostileServer(os.urandom(100_000)) as hostile:
            handler = Recorder()
            a = make("tcp", handler)
            await a.start()
            a.registry.add(1, 2, hostile.address)
            try:
                a.send([heartbeat()])
                await eventually(lambda: a.stats.rejected[Reject.MALFORMED] >= 1)
                await eventually(lambda: (1, 2) in handler.unreachable, what="unreachable")

                async def dialled_again() -> bool:
                    while hostile.accepted < 2:
                        a.send([heartbeat()])
                        await asyncio.sleep(0.05)
                    return True

                assert await asyncio.wait_for(dialled_again(), 10)
            finally:
                await a.close()

    run("uvloop", main)


def test_a_snapshot_answer_that_is_garbage_huge_or_never_comes_fails_the_transfer(
    tmp_path: Path,
) -> None:
    message = install(tmp_path, sizes=(3000,))

    async def main() -> None:
        for reply, hold in (
            (b"\xff\xff\xff\xff" + os.urandom(64), False),  # a 4 GiB answer announced
            (bytes((0, 0, 0, 3, 0)) + b"\xff\xff", False),  # "accepted", a body that is no Ack
            (b"", False),  # closed without an answer
            (b"", True),  # never answers, never closes: snapshot_chunk_timeout ends it
        ):
            async with HostileServer(reply, hold) as hostile:
                handler = Recorder()
                a = make("tcp", handler, snapshot_chunk_timeout=0.5, snapshot_chunk_size=1024)
                await a.start()
                a.registry.add(1, 2, hostile.address)
                try:
                    a.send_snapshot(message)
                    await eventually(lambda h=handler: h.statuses == [(1, 2, True)], timeout=10)
                finally:
                    await a.close()

    run("uvloop", main)


def test_a_peer_that_stops_reading_is_given_up_after_write_timeout() -> None:
    """Frames are written at once while the socket has room; once it has none, the
    writer task waits for it, bounded by write_timeout, and then reports the peer."""

    async def main() -> None:
        async with HostileServer(b"", hold=True) as frozen:
            handler = Recorder()
            a = make("tcp", handler, write_timeout=0.5)
            await a.start()
            a.registry.add(1, 2, frozen.address)
            try:
                big = heartbeat()
                big.type = pb.REPLICATE
                big.entries.add(term=1, index=1, cmd=os.urandom(32 * 1024))
                for _ in range(100):  # 100 sends of 3.2 MiB each: far past any buffer
                    a.send([big] * 100)
                    await asyncio.sleep(0)
                    if (1, 2) in handler.unreachable:
                        break
                await eventually(lambda: (1, 2) in handler.unreachable, what="unreachable")
                assert a.stats.connect_failures >= 1 and a.stats.batches_sent >= 1
            finally:
                await a.close()

    run("uvloop", main)
