"""The snapshot file format: round trips, and every kind of damage is found and named."""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

import pytest

from nodehost.rsm import CompressionType, SnapshotCorrupt
from nodehost.rsm.snapshotio import (
    BLOCK_SIZE,
    HEADER_SIZE,
    SnapshotReader,
    SnapshotWriter,
    WrittenFile,
    verify,
)
from protos import raft_pb2 as pb

SESSIONS = b"session-table" * 10


def write(
    path: str, data: bytes, compression: CompressionType = CompressionType.NONE, pieces: int = 1
) -> WrittenFile:
    w = SnapshotWriter(path, compression)
    w.write_sessions(SESSIONS)
    out = w.data()
    step = max(1, len(data) // pieces)
    for i in range(0, len(data), step):
        out.write(data[i : i + step])
    return w.close()


def read(path: str) -> tuple[bytes, bytes]:
    with SnapshotReader(path) as r:
        sessions = r.read_sessions()
        return sessions, r.data().read()


@pytest.mark.parametrize("compression", list(CompressionType))
@pytest.mark.parametrize("size", [0, 1, BLOCK_SIZE, 2 * BLOCK_SIZE + 123])
def test_round_trip(tmp_path: object, compression: CompressionType, size: int) -> None:
    path = os.path.join(str(tmp_path), "s.snap")
    data = (b"0123456789abcdef" * (size // 16 + 1))[:size]
    written = write(path, data, compression, pieces=7)
    assert written.file_size == os.path.getsize(path)
    header = verify(path, pb.Snapshot(checksum=written.checksum, file_size=written.file_size))
    assert header.data_size == size and header.session_size == len(SESSIONS)
    assert read(path) == (SESSIONS, data)
    if compression == CompressionType.ZLIB and size > 1000:
        assert written.file_size < size // 4


def test_incompressible_blocks_are_stored_raw(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "s.snap")
    data = os.urandom(BLOCK_SIZE + 10)
    written = write(path, data, CompressionType.ZLIB)
    assert written.file_size < len(data) + HEADER_SIZE + 100
    assert read(path)[1] == data


def test_small_writes_are_buffered_into_blocks(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "s.snap")
    w = SnapshotWriter(path, CompressionType.NONE)
    w.write_sessions(b"")
    out = w.data()
    for i in range(20000):
        out.write(struct.pack(">I", i))
    w.close()
    data = read(path)[1]
    assert len(data) == 80000 and struct.unpack_from(">I", data, 4 * 19999)[0] == 19999
    # one block: the buffer gathered 20,000 writes
    assert os.path.getsize(path) == HEADER_SIZE + 12 + 80000


@pytest.fixture
def snap(tmp_path: object) -> tuple[str, bytes]:
    path = os.path.join(str(tmp_path), "s.snap")
    data = bytes(range(256)) * (BLOCK_SIZE // 256) * 2 + b"tail"
    write(path, data)
    return path, data


def _flip(path: str, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x10]))


def test_every_bit_flip_is_found(snap: tuple[str, bytes]) -> None:
    path, _ = snap
    size = os.path.getsize(path)
    block1 = HEADER_SIZE + 12 + len(SESSIONS)  # the session table is block 0
    block2 = block1 + 12 + BLOCK_SIZE
    offsets = [
        0,
        9,
        13,
        20,
        40,
        HEADER_SIZE,
        HEADER_SIZE + 5,
        HEADER_SIZE + 9,
        HEADER_SIZE + 12,
        block1 + 1,
        block1 + 500,
        block2 + 2,
        block2 + 11,
        size - 1,
    ]
    for offset in offsets:
        original = Path(path).read_bytes()
        _flip(path, offset)
        with pytest.raises(SnapshotCorrupt, match=re.escape(path)):
            verify(path)
        with open(path, "wb") as f:
            f.write(original)
    verify(path)


def test_truncation_is_found_anywhere(snap: tuple[str, bytes]) -> None:
    path, _ = snap
    original = Path(path).read_bytes()
    block1 = HEADER_SIZE + 12 + len(SESSIONS)
    block2 = block1 + 12 + BLOCK_SIZE
    for cut in [
        0,
        10,
        HEADER_SIZE - 1,
        HEADER_SIZE,
        HEADER_SIZE + 5,
        block1,
        block2,
        block2 + 12,
        len(original) - 1,
    ]:
        with open(path, "wb") as f:
            f.write(original[:cut])
        with pytest.raises(SnapshotCorrupt, match=re.escape(path)):
            verify(path)


def test_trailing_garbage_is_found(snap: tuple[str, bytes]) -> None:
    path, _ = snap
    with open(path, "ab") as f:
        f.write(b"\x00" * 12)
    with pytest.raises(SnapshotCorrupt):
        verify(path)


def test_swapped_blocks_are_found_by_the_digest(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "s.snap")
    w = SnapshotWriter(path, CompressionType.NONE)
    w.write_sessions(b"")
    out = w.data()
    out.write(b"A" * BLOCK_SIZE)
    out.write(b"B" * BLOCK_SIZE)
    w.close()
    raw = Path(path).read_bytes()
    n = 12 + BLOCK_SIZE
    first, second = raw[HEADER_SIZE : HEADER_SIZE + n], raw[HEADER_SIZE + n :]
    with open(path, "wb") as f:
        f.write(raw[:HEADER_SIZE] + second + first)
    with pytest.raises(SnapshotCorrupt, match="digest"):
        verify(path)


def test_metadata_must_match_the_file(snap: tuple[str, bytes], tmp_path: object) -> None:
    path, _ = snap
    other = os.path.join(str(tmp_path), "other.snap")
    written = write(other, b"different")
    with pytest.raises(SnapshotCorrupt, match="not the snapshot"):
        verify(path, pb.Snapshot(checksum=written.checksum))
    with pytest.raises(SnapshotCorrupt, match="bytes"):
        verify(path, pb.Snapshot(file_size=12))
    with pytest.raises(SnapshotCorrupt, match="missing"):
        verify(os.path.join(str(tmp_path), "absent.snap"))


def test_unfinished_file_is_rejected(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "s.snap")
    w = SnapshotWriter(path, CompressionType.NONE)
    w.write_sessions(SESSIONS)
    w.data().write(b"x" * 100)
    w.abort()
    with pytest.raises(SnapshotCorrupt, match="bad magic"):
        verify(path)


def test_reader_checks_blocks_while_reading(snap: tuple[str, bytes]) -> None:
    path, _ = snap
    block2 = HEADER_SIZE + 12 + len(SESSIONS) + 12 + BLOCK_SIZE
    _flip(path, block2 + 12 + 100)  # inside the second data block
    with SnapshotReader(path) as r:
        r.read_sessions()
        data = r.data()
        data.read(BLOCK_SIZE - 1000)
        with pytest.raises(SnapshotCorrupt, match="block checksum"):
            data.read()
