"""Random and mutated frames thrown at a live transport, gRPC and TCP.

Whatever arrives, the server neither crashes nor grows without a bound; every frame is
either refused whole (and counted) or decoded with each message checked; the engine
sees only messages that pass the checks; no snapshot stream leaves a partial copy.
CI runs a few thousand frames; `--run-slow` runs a few hundred thousand.
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
from pathlib import Path

import psutil
import pytest
from transport_kit import (
    DEPLOYMENT,
    IN_CI,
    Recorder,
    chunks,
    edit,
    eventually,
    heartbeat,
    install,
    make,
    raw_stream,
    raw_tcp,
    run,
    tcp_answer,
)

from protos import raft_pb2 as pb
from transport import Reject
from transport.frames import BATCH_METHOD, BIN_VERSION, REMOTE_TYPES, SNAPSHOT_METHOD
from transport.tcp_wire import BATCHES, SNAPSHOT, frame_bytes, preamble

KINDS = ("grpc", "tcp")
HOSTED = {(1, 2), (2, 2), (3, 2)}
BATCH_LEVEL = (Reject.OVERSIZED, Reject.MALFORMED, Reject.WRONG_DEPLOYMENT, Reject.WRONG_VERSION)


def seed_frames(rng: random.Random) -> list[bytes]:
    """Valid batches of every remote type, to mutate."""
    out = []
    for _ in range(20):
        messages = []
        for _ in range(rng.randint(1, 8)):
            m = pb.Message(
                type=rng.choice(sorted(REMOTE_TYPES)),
                shard_id=rng.randint(1, 4),
                to=rng.randint(1, 3),
                from_id=rng.randint(0, 3),
                term=rng.randint(0, 50),
                log_index=rng.randint(0, 1 << 40),
                commit=rng.randint(0, 1000),
            )
            for _ in range(rng.randint(0, 3)):
                m.entries.add(
                    term=1, index=rng.randint(1, 100), cmd=rng.randbytes(rng.randint(0, 64))
                )
            messages.append(m)
        out.append(
            pb.MessageBatch(
                deployment_id=DEPLOYMENT,
                source_address="fuzz:1",
                bin_ver=BIN_VERSION,
                requests=messages,
            ).SerializeToString()
        )
    return out


def mutate(rng: random.Random, frame: bytes, seeds: list[bytes]) -> bytes:
    data = bytearray(frame)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(8)
        if op == 0 and data:  # flip bits
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        elif op == 1 and data:  # truncate
            del data[rng.randrange(len(data)) :]
        elif op == 2:  # insert random bytes
            i = rng.randint(0, len(data))
            data[i:i] = rng.randbytes(rng.randint(1, 16))
        elif op == 3 and data:  # overwrite with an extreme varint
            i = rng.randrange(len(data))
            data[i : i + 10] = b"\xff" * 9 + b"\x01"
        elif op == 4:  # splice two frames
            other = rng.choice(seeds)
            data = data[: rng.randint(0, len(data))] + bytearray(
                other[rng.randint(0, len(other)) :]
            )
        elif op == 5 and len(data) > 2:  # duplicate a region
            i, j = sorted(rng.sample(range(len(data)), 2))
            data[j:j] = data[i:j]
        elif op == 6:  # pure noise
            data = bytearray(rng.randbytes(rng.randint(0, 300)))
        else:  # a field tag with a huge length
            data += bytes([rng.randrange(256)]) + b"\xff\xff\xff\xff\x0f"
    return bytes(data)


def rss_mib() -> float:
    gc.collect()
    return float(psutil.Process().memory_info().rss) / 2**20


async def send_batches(kind: str, target: str, frames: list[bytes]) -> None:
    if kind == "grpc":
        await raw_stream(target, BATCH_METHOD, frames)
    else:
        assert await raw_tcp(target, BATCHES, frames) == b""  # one way: never an answer


async def send_snapshot(kind: str, target: str, frames: list[bytes]) -> bool:
    """Whether the receiver took the stream whole."""
    if kind == "grpc":
        try:
            await raw_stream(target, SNAPSHOT_METHOD, frames)
            return True
        except Exception:
            return False
    status, _ = tcp_answer(await raw_tcp(target, SNAPSHOT, frames))
    return status == 0


async def send_raw(target: str, data: bytes) -> None:
    """Bytes on a fresh connection; the server takes them or hangs up, never stalls
    on them past its timeouts (the connection is closed by this side after them)."""
    host, port = target.rsplit(":", 1)
    _, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(data)
        await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


def fuzz(kind: str, frames_total: int, snapshot_streams: int, tmp: Path, seed: int) -> None:
    rng = random.Random(seed)
    seeds = seed_frames(rng)
    root = tmp / "recv"
    root.mkdir()
    snapshot = chunks(install(tmp, sizes=(3000, 500)), chunk_size=1024)  # 4 chunks

    async def main() -> None:
        handler = Recorder(hosted=set(HOSTED), snapshot_root=str(root))
        b = make(kind, handler, max_message_size=256 * 1024, snapshot_chunk_size=1024)
        honest = make(kind, Recorder())
        await b.start()
        await honest.start()
        honest.registry.add(1, 2, b.config.raft_address)
        target = b.config.raft_address
        try:
            await send_batches(kind, target, seeds)  # warm up before measuring memory
            baseline = rss_mib()
            sent = len(seeds)
            while sent < len(seeds) + frames_total:
                burst = [mutate(rng, rng.choice(seeds), seeds) for _ in range(500)]
                await send_batches(kind, target, burst)
                sent += len(burst)
            stats = b.stats
            # Every frame was either refused whole or decoded and checked message by message.
            assert stats.batches_received + sum(stats.rejected[r] for r in BATCH_LEVEL) == sent
            refused_before = sum(stats.rejected.values())
            accepted = 0
            for i in range(snapshot_streams):
                stream = [edit(f, lambda c, i=i: setattr(c, "index", 1000 + i)) for f in snapshot]
                k = rng.randrange(len(stream))
                stream[k] = mutate(rng, stream[k], stream)
                if rng.random() < 0.2:
                    del stream[rng.randrange(len(stream)) :]  # and some are cut short
                accepted += await send_snapshot(kind, target, stream)
            # Every snapshot stream was either taken whole or refused for one counted reason.
            await eventually(
                lambda: sum(stats.rejected.values()) - refused_before + accepted == snapshot_streams
            )
            for m in handler.messages:  # the engine saw only what passes the checks
                assert m.type in REMOTE_TYPES and (m.shard_id, m.to) in HOSTED
                assert m.from_id != 0 and m.term != 2**64 - 1
            assert not any(".receiving" in name for name in os.listdir(root))
            assert len(handler.snapshots) == accepted == len(os.listdir(root))
            for got in handler.snapshots:  # accepted copies are intact
                assert Path(got.snapshot.filepath).stat().st_size == 3000
            if kind == "tcp":  # the framing itself: lengths and preambles mangled
                for _ in range(max(20, frames_total // 100)):
                    wire = bytearray(preamble(BATCHES))
                    for frame in rng.sample(seeds, 3):
                        wire += frame_bytes(frame)
                    await send_raw(target, mutate(rng, bytes(wire), seeds))
                for m in handler.messages:
                    assert m.type in REMOTE_TYPES and (m.shard_id, m.to) in HOSTED
            growth = rss_mib() - baseline
            assert growth < 64, f"RSS grew {growth:.0f} MiB"
            honest.send([heartbeat(term=77)])  # and it still serves
            await eventually(lambda: any(m.term == 77 and m.from_id == 1 for m in handler.messages))
        finally:
            await honest.close()
            await b.close()

    run("uvloop", main, timeout=600)


@pytest.mark.parametrize("kind", KINDS)
def test_fuzz_frames_and_snapshot_streams(kind: str, tmp_path: Path) -> None:
    fuzz(kind, 5000, 200, tmp_path, seed=1)


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_fuzz_frames_and_snapshot_streams_long(kind: str, tmp_path: Path) -> None:
    """uv run pytest tests/transport/test_fuzz.py --run-slow"""
    seed = int.from_bytes(os.urandom(4), "big")
    fuzz(kind, 300_000 if not IN_CI else 20_000, 5000, tmp_path, seed=seed)
