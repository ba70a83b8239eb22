"""Incoming snapshot streams (transport/snapshot_recv.py), fed crafted chunk frames.

Each bad stream is refused with its reason counted, the engine hears nothing, and
nothing is left in the snapshot directory: no partial copy, no temporary directory.
"""

from __future__ import annotations

import asyncio
import os
import zlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from transport_kit import Recorder, chunks, config, edit, install, run

from protos import raft_pb2 as pb
from transport import Reject, TransportStats
from transport.snapshot_recv import SnapshotInbox, SnapshotRejected
from transport.snapshot_send import SnapshotSendError, plan


async def frames_of(items: list[bytes], stall: bool = False) -> AsyncIterator[bytes]:
    for item in items:
        yield item
    if stall:
        await asyncio.sleep(3600)


def receive(
    tmp: Path, frames: list[bytes], stall: bool = False, **kw: Any
) -> tuple[int | SnapshotRejected, Recorder, TransportStats, Path]:
    root = tmp / "recv"
    root.mkdir(exist_ok=True)
    handler = Recorder(hosted={(1, 2)}, snapshot_root=str(root))
    stats = TransportStats()
    inbox = SnapshotInbox(config(**kw), handler, stats, lambda: None)

    async def main() -> int | SnapshotRejected:
        try:
            return await inbox.receive(frames_of(frames, stall))
        except SnapshotRejected as e:
            return e

    return run("asyncio", main), handler, stats, root


def test_a_whole_snapshot_is_renamed_into_place_with_its_metadata(tmp_path: Path) -> None:
    membership = pb.Membership(config_change_id=4, addresses={1: "a:1", 2: "b:1"})
    message = install(
        tmp_path,
        membership=membership,
        checksum=b"sum",
        type=pb.ON_DISK_STATE_MACHINE,
        on_disk_index=70,
        imported=True,
    )
    frames = chunks(message)
    assert len(frames) == 5 + 1 + 3  # 1 KiB pieces; an empty file is one empty chunk
    result, handler, stats, root = receive(tmp_path, frames)
    assert result == len(frames) and not stats.rejected
    [got] = handler.snapshots
    final = root / "snapshot-1-2-000000000000004d"
    assert os.listdir(root) == [final.name]
    s = got.snapshot
    assert (got.type, got.shard_id, got.to, got.from_id, got.term) == (
        pb.INSTALL_SNAPSHOT,
        1,
        2,
        1,
        9,
    )
    assert (s.index, s.term, s.membership, s.checksum) == (77, 8, membership, b"sum")
    assert (s.type, s.on_disk_index, s.imported) == (pb.ON_DISK_STATE_MACHINE, 70, True)
    assert s.filepath == str(final / "snapshot.bin") and s.file_size == 5000
    sent = message.snapshot
    assert Path(s.filepath).read_bytes() == Path(sent.filepath).read_bytes()
    for f, g in zip(s.files, sent.files, strict=True):
        assert (f.file_id, f.metadata, f.file_size) == (
            g.file_id,
            g.metadata,
            os.path.getsize(g.filepath),
        )
        assert Path(f.filepath).read_bytes() == Path(g.filepath).read_bytes()
        assert Path(f.filepath).parent == final


def test_the_same_snapshot_again_keeps_the_copy_in_place(tmp_path: Path) -> None:
    frames = chunks(install(tmp_path))
    receive(tmp_path, frames)
    result, handler, _, root = receive(tmp_path, frames)
    assert result == len(frames) and len(handler.snapshots) == 1
    assert len(os.listdir(root)) == 1  # no temporary directory left behind


def _swap(frames: list[bytes]) -> list[bytes]:
    return [frames[0], frames[2], frames[1], *frames[3:]]


def _flip_data(frames: list[bytes]) -> list[bytes]:
    bad = edit(frames[3], lambda c: setattr(c, "data", bytes([c.data[0] ^ 1]) + c.data[1:]))
    return [*frames[:3], bad, *frames[4:]]


def _forge_file(frames: list[bytes]) -> list[bytes]:
    """A consistent crc32 on every chunk, but not the bytes the file was hashed over."""

    def change(c: pb.SnapshotChunk) -> None:
        c.data = b"\0" * len(c.data)
        c.chunk_checksum = zlib.crc32(c.data)

    return [frames[0], edit(frames[1], change), *frames[2:]]


def _path(name: str) -> Callable[[list[bytes]], list[bytes]]:
    return lambda frames: [edit(frames[0], lambda c: setattr(c, "filepath", name)), *frames[1:]]


def _other_transfer(frames: list[bytes]) -> list[bytes]:
    return [frames[0], edit(frames[1], lambda c: setattr(c, "index", 78)), *frames[2:]]


def _overrun(frames: list[bytes]) -> list[bytes]:
    def change(c: pb.SnapshotChunk) -> None:
        c.data = c.data + b"more"
        c.chunk_checksum = zlib.crc32(c.data)

    return [*frames[:4], edit(frames[4], change), *frames[5:]]


def _clashing_names(frames: list[bytes]) -> list[bytes]:
    def change(c: pb.SnapshotChunk) -> None:
        c.files[0].filepath = c.files[1].filepath

    return [edit(frames[0], change), *frames[1:]]


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (_swap, Reject.OUT_OF_ORDER),
        (lambda f: f[1:], Reject.OUT_OF_ORDER),  # starts at chunk 1
        (lambda f: [*f[:5], f[6], *f[7:]], Reject.OUT_OF_ORDER),  # a chunk missing
        (lambda f: [*f, f[-1]], Reject.OUT_OF_ORDER),  # one too many
        (_flip_data, Reject.BAD_CHECKSUM),
        (_forge_file, Reject.BAD_CHECKSUM),
        (_path("../x"), Reject.BAD_PATH),
        (_path("/etc/passwd"), Reject.BAD_PATH),
        (_path(".."), Reject.BAD_PATH),
        (_path(""), Reject.BAD_PATH),
        (_clashing_names, Reject.BAD_PATH),
        (_other_transfer, Reject.BAD_FIELD),
        (_overrun, Reject.BAD_FIELD),
        (lambda f: f[:4], Reject.INCOMPLETE),  # the sender went away
        (lambda f: [], Reject.INCOMPLETE),
        (lambda f: [b"\xff\xfe garbage", *f[1:]], Reject.MALFORMED),
        (lambda f: [*f[:2], b"\x0a\xff"], Reject.MALFORMED),
        (
            lambda f: [edit(f[0], lambda c: setattr(c, "deployment_id", 1)), *f[1:]],
            Reject.WRONG_DEPLOYMENT,
        ),
        (lambda f: [edit(f[0], lambda c: setattr(c, "bin_ver", 99)), *f[1:]], Reject.WRONG_VERSION),
        (lambda f: [edit(f[0], lambda c: setattr(c, "shard_id", 5)), *f[1:]], Reject.NOT_HOSTED),
        (lambda f: [edit(f[0], lambda c: setattr(c, "replica_id", 3)), *f[1:]], Reject.NOT_HOSTED),
        (lambda f: [edit(f[0], lambda c: setattr(c, "from_id", 0)), *f[1:]], Reject.BAD_FIELD),
    ],
    ids=[
        "swapped",
        "no-first",
        "gap",
        "extra",
        "bad-crc",
        "bad-sha256",
        "dotdot-x",
        "absolute",
        "dotdot",
        "empty-name",
        "clash",
        "other-transfer",
        "overrun",
        "cut-short",
        "empty-stream",
        "garbage-first",
        "garbage-later",
        "deployment",
        "version",
        "unknown-shard",
        "not-hosted",
        "from-zero",
    ],
)
def test_bad_streams_leave_nothing_behind(
    tmp_path: Path, mangle: Callable[[list[bytes]], list[bytes]], reason: Reject
) -> None:
    frames = mangle(chunks(install(tmp_path)))
    result, handler, stats, root = receive(tmp_path, frames)
    assert isinstance(result, SnapshotRejected) and result.reason is reason
    assert stats.rejected == {reason: 1}
    assert handler.snapshots == []
    assert os.listdir(root) == []


def test_an_oversized_chunk_is_refused(tmp_path: Path) -> None:
    frames = chunks(install(tmp_path, sizes=(200_000,)), chunk_size=100_000)
    result, _, stats, root = receive(
        tmp_path, frames, max_message_size=65536, snapshot_chunk_size=1024
    )
    assert isinstance(result, SnapshotRejected) and stats.rejected == {Reject.OVERSIZED: 1}
    assert os.listdir(root) == []


def test_a_stalled_sender_is_dropped(tmp_path: Path) -> None:
    frames = chunks(install(tmp_path))[:3]
    result, _, stats, root = receive(tmp_path, frames, stall=True, snapshot_chunk_timeout=0.2)
    assert isinstance(result, SnapshotRejected) and stats.rejected == {Reject.INCOMPLETE: 1}
    assert os.listdir(root) == []


def test_too_many_transfers_at_once_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "recv"
    root.mkdir()
    frames = chunks(install(tmp_path))
    handler = Recorder(hosted={(1, 2)}, snapshot_root=str(root))
    stats = TransportStats()
    inbox = SnapshotInbox(config(max_snapshot_streams=1), handler, stats, lambda: None)

    async def main() -> None:
        stalled = asyncio.create_task(inbox.receive(frames_of(frames[:2], stall=True)))
        await asyncio.sleep(0.05)
        with pytest.raises(SnapshotRejected, match="busy"):
            await inbox.receive(frames_of(frames))
        stalled.cancel()  # the peer goes away: counted as incomplete, cleaned up
        with pytest.raises(asyncio.CancelledError):
            await stalled
        assert await inbox.receive(frames_of(frames)) == len(frames)  # a slot again

    run("asyncio", main)
    assert stats.rejected == {Reject.BUSY: 1, Reject.INCOMPLETE: 1}
    assert len(os.listdir(root)) == 1 and len(handler.snapshots) == 1


def test_missing_parents_are_made(tmp_path: Path) -> None:
    frames = chunks(install(tmp_path))
    handler = Recorder(hosted={(1, 2)}, snapshot_root=str(tmp_path / "new" / "dirs"))
    inbox = SnapshotInbox(config(), handler, TransportStats(), lambda: None)

    async def main() -> None:
        assert await inbox.receive(frames_of(frames)) == len(frames)

    run("asyncio", main)
    assert len(handler.snapshots) == 1


def test_a_disk_that_fails_is_a_storage_rejection(tmp_path: Path) -> None:
    frames = chunks(install(tmp_path))
    (tmp_path / "a-file").write_text("not a directory")
    handler = Recorder(hosted={(1, 2)}, snapshot_root=str(tmp_path / "a-file"))
    stats = TransportStats()
    inbox = SnapshotInbox(config(), handler, stats, lambda: None)

    async def main() -> None:
        with pytest.raises(SnapshotRejected):
            await inbox.receive(frames_of(frames))

    run("asyncio", main)
    assert stats.rejected == {Reject.STORAGE: 1}
    assert sorted(os.listdir(tmp_path)) == ["a-file", "src"]


def test_an_engine_failure_on_a_received_snapshot_is_counted(tmp_path: Path) -> None:
    frames = chunks(install(tmp_path))
    root = tmp_path / "recv"
    handler = Recorder(hosted={(1, 2)}, snapshot_root=str(root))
    handler.on_snapshot_received = lambda message: 1 / 0  # type: ignore[method-assign,assignment,misc,func-returns-value]
    stats = TransportStats()
    inbox = SnapshotInbox(config(), handler, stats, lambda: None)

    async def main() -> None:
        with pytest.raises(ZeroDivisionError):  # the sender hears of a failure, and retries
            await inbox.receive(frames_of(frames))

    run("asyncio", main)
    assert stats.handler_errors == 1
    assert len(os.listdir(root)) == 1  # the copy in place is whole; a retry keeps it


def test_the_sender_refuses_what_it_cannot_send(tmp_path: Path) -> None:
    no_file = pb.Message(type=pb.INSTALL_SNAPSHOT, snapshot=pb.Snapshot(index=1))
    with pytest.raises(SnapshotSendError, match="no file"):
        plan(no_file)
    message = install(tmp_path)
    message.snapshot.files[1].filepath = str(tmp_path / "other" / "extra-1.sst")  # same base name
    with pytest.raises(SnapshotSendError, match="clash"):
        plan(message)


def test_an_empty_directory_made_in_advance_is_filled(tmp_path: Path) -> None:
    """NodeHost's store makes the receive directory before handing it out."""
    frames = chunks(install(tmp_path))
    final = tmp_path / "recv" / "snapshot-1-2-000000000000004d"
    final.mkdir(parents=True)
    result, handler, _, root = receive(tmp_path, frames)
    assert result == len(frames) and len(handler.snapshots) == 1
    assert sorted(os.listdir(final)) == ["extra-1.sst", "extra-2.sst", "snapshot.bin"]
    assert os.listdir(root) == [final.name]
