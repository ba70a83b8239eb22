"""Snapshots between two live transports: send_snapshot, its status, and failures."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from transport_kit import LOOPS, Recorder, eventually, make, run

from protos import raft_pb2 as pb
from transport import FaultHook, InMemoryNetwork, Reject
from transport.base import BaseTransport

KINDS = ("grpc", "tcp", "memory")


def write_files(tmp: Path, sizes: tuple[int, ...]) -> list[str]:
    src = tmp / "src"
    src.mkdir(exist_ok=True)
    paths = []
    for i, size in enumerate(sizes):
        path = src / f"file-{i}"
        path.write_bytes(os.urandom(size))
        paths.append(str(path))
    return paths


def install(paths: list[str], index: int = 10) -> pb.Message:
    return pb.Message(
        type=pb.INSTALL_SNAPSHOT,
        shard_id=1,
        to=2,
        from_id=1,
        term=4,
        snapshot=pb.Snapshot(
            shard_id=1,
            index=index,
            term=3,
            filepath=paths[0],
            files=[pb.SnapshotFile(file_id=i, filepath=p) for i, p in enumerate(paths[1:], 1)],
        ),
    )


class Hosts:
    def __init__(self, kind: str, tmp: Path, **kw: object) -> None:
        self.root = tmp / "recv"
        self.root.mkdir()
        network = InMemoryNetwork()
        self.ha = Recorder()
        self.hb = Recorder(hosted={(1, 2)}, snapshot_root=str(self.root))
        self.a: BaseTransport = make(kind, self.ha, network, **kw)
        self.b: BaseTransport = make(kind, self.hb, network, **kw)
        self.a.registry.add(1, 2, self.b.config.raft_address)

    async def start(self) -> Hosts:
        await self.a.start()
        await self.b.start()
        return self

    async def close(self) -> None:
        await self.a.close()
        await self.b.close()

    def leftovers(self) -> list[str]:
        return sorted(os.listdir(self.root))


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("kind", KINDS)
def test_a_snapshot_with_files_arrives_whole(kind: str, loop: str, tmp_path: Path) -> None:
    paths = write_files(tmp_path, (300_000, 0, 70_000))

    async def main() -> None:
        h = await Hosts(kind, tmp_path, snapshot_chunk_size=64 * 1024).start()
        try:
            message = install(paths)
            h.a.send_snapshot(message)
            message.to = 99  # the engine may reuse its object at once
            await eventually(lambda: bool(h.ha.statuses))
            assert h.ha.statuses == [(1, 2, False)]
            [got] = h.hb.snapshots
            assert got.snapshot.index == 10 and got.term == 4
            received = [got.snapshot.filepath] + [f.filepath for f in got.snapshot.files]
            for sent, local in zip(paths, received, strict=True):
                assert Path(local).read_bytes() == Path(sent).read_bytes()
            assert h.leftovers() == ["snapshot-1-2-000000000000000a"]
            assert h.a.stats.snapshots_sent == 1 and h.b.stats.snapshots_received == 1
        finally:
            await h.close()

    run(loop, main)


@pytest.mark.parametrize("kind", KINDS)
def test_a_refused_snapshot_is_reported_failed(kind: str, tmp_path: Path) -> None:
    paths = write_files(tmp_path, (10_000,))

    async def main() -> None:
        h = await Hosts(kind, tmp_path).start()
        try:
            h.hb.hosted.clear()  # the receiver no longer hosts the replica
            h.a.send_snapshot(install(paths))
            await eventually(lambda: bool(h.ha.statuses))
            assert h.ha.statuses == [(1, 2, True)]
            assert h.b.stats.rejected == {Reject.NOT_HOSTED: 1}
            assert h.a.stats.snapshots_failed == 1 and h.hb.snapshots == []
            assert h.leftovers() == []
        finally:
            await h.close()

    run("uvloop", main)


@pytest.mark.parametrize("kind", KINDS)
def test_an_unknown_target_or_missing_file_fails_at_once(kind: str, tmp_path: Path) -> None:
    async def main() -> None:
        h = await Hosts(kind, tmp_path).start()
        try:
            h.a.registry.remove(1, 2)
            h.a.send_snapshot(install([str(tmp_path / "nothing")]))
            assert h.ha.statuses == [(1, 2, True)]  # no address: told in the call
            h.a.registry.add(1, 2, h.b.config.raft_address)
            h.a.send_snapshot(install([str(tmp_path / "nothing")]))
            await eventually(lambda: len(h.ha.statuses) == 2)
            assert h.ha.statuses[1] == (1, 2, True)
            assert h.leftovers() == []
        finally:
            await h.close()

    run("asyncio", main)


@pytest.mark.parametrize("kind", KINDS)
def test_an_interrupted_transfer_fails_and_leaves_nothing(kind: str, tmp_path: Path) -> None:
    paths = write_files(tmp_path, (4 * 1024 * 1024,))

    async def main() -> None:
        h = await Hosts(kind, tmp_path, snapshot_chunk_size=4096).start()
        closing: list[asyncio.Task[None]] = []
        h.hb.on_snapshot_dir = lambda: closing.append(asyncio.ensure_future(h.b.close()))
        try:
            h.a.send_snapshot(install(paths))
            await eventually(lambda: bool(h.ha.statuses), timeout=20)
            await asyncio.gather(*closing)
            assert h.ha.statuses == [(1, 2, True)]
            # The sender may hear of the failure before the receiver has cleaned up.
            await eventually(lambda: h.b.stats.rejected == {Reject.INCOMPLETE: 1})
            await eventually(lambda: h.leftovers() == [])
            assert h.hb.snapshots == []
        finally:
            await h.close()

    run("uvloop", main)


@pytest.mark.parametrize("kind", KINDS)
def test_a_cut_stops_snapshots_both_ways(kind: str, tmp_path: Path) -> None:
    paths = write_files(tmp_path, (1000,))

    async def main() -> None:
        h = await Hosts(kind, tmp_path).start()
        a, b = h.a.config.raft_address, h.b.config.raft_address
        try:
            sender_hook = FaultHook()
            sender_hook.cut(a, b)
            h.a.set_fault_hook(sender_hook)
            h.a.send_snapshot(install(paths))
            await eventually(lambda: len(h.ha.statuses) == 1)
            h.a.set_fault_hook(None)
            receiver_hook = FaultHook()
            receiver_hook.cut(a, b)
            h.b.set_fault_hook(receiver_hook)
            h.a.send_snapshot(install(paths))
            await eventually(lambda: len(h.ha.statuses) == 2)
            assert h.ha.statuses == [(1, 2, True), (1, 2, True)]
            assert h.b.stats.fault_dropped == 1 and h.hb.snapshots == []
            h.b.set_fault_hook(None)
            h.a.send_snapshot(install(paths))
            await eventually(lambda: len(h.ha.statuses) == 3)
            assert h.ha.statuses[2] == (1, 2, False)
        finally:
            await h.close()

    run("asyncio", main)
