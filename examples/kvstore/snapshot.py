"""The snapshot stream both store kinds write and read.

Layout: MAGIC, the index of the last command applied (u64), then records of
(key length u32, value length u32, key, value), then an end mark (u32 0xFFFFFFFF) and
the state digest (u64). The reader recomputes the digest and refuses a stream that does
not match, so a truncated or damaged snapshot is never half installed.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

from examples.kvstore.commands import add_digest
from statemachine import SnapshotStopped

MAGIC = b"KVSNAP\x00\x01"
_INDEX = struct.Struct(">Q")
_RECORD = struct.Struct(">II")
_END = 0xFFFFFFFF
_END_MARK = struct.pack(">I", _END)
_FLUSH_BYTES = 256 * 1024
_CHECK_STOP_EVERY = 1024


class SnapshotFormatError(ValueError):
    """The stream is not a whole key-value snapshot."""


def write_snapshot(
    writer: BinaryIO,
    index: int,
    items: Iterable[tuple[bytes, bytes]],
    stopped: Callable[[], bool],
) -> int:
    """Stream `items` (UTF-8 key, value); returns their digest."""
    digest = 0
    buffer = bytearray(MAGIC + _INDEX.pack(index))
    for count, (key, value) in enumerate(items, 1):
        buffer += _RECORD.pack(len(key), len(value))
        buffer += key
        buffer += value
        digest = add_digest(digest, key, value)
        if len(buffer) >= _FLUSH_BYTES:
            writer.write(buffer)
            buffer.clear()
        if count % _CHECK_STOP_EVERY == 0 and stopped():
            raise SnapshotStopped("the replica is closing")
    buffer += _END_MARK + _INDEX.pack(digest)
    writer.write(buffer)
    return digest


class SnapshotReader:
    """Reads a stream `write_snapshot` made: `index` first, then `items()` once.

    `items()` raises SnapshotFormatError at the end when the digest does not match, so
    callers install what they read only after the iteration finished.
    """

    def __init__(self, reader: BinaryIO, stopped: Callable[[], bool]) -> None:
        self._reader = reader
        self._stopped = stopped
        self.digest = 0
        if self._read(len(MAGIC)) != MAGIC:
            raise SnapshotFormatError("not a key-value snapshot (bad magic)")
        (self.index,) = _INDEX.unpack(self._read(_INDEX.size))

    def _read(self, size: int) -> bytes:
        data = self._reader.read(size)
        while len(data) < size:
            more = self._reader.read(size - len(data))
            if not more:
                raise SnapshotFormatError("the snapshot ends early (truncated)")
            data += more
        return data

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        count = 0
        while True:
            head = self._read(4)
            if head == _END_MARK:
                break
            (key_len,) = struct.unpack(">I", head)
            (value_len,) = struct.unpack(">I", self._read(4))
            key = self._read(key_len)
            value = self._read(value_len)
            self.digest = add_digest(self.digest, key, value)
            yield key, value
            count += 1
            if count % _CHECK_STOP_EVERY == 0 and self._stopped():
                raise SnapshotStopped("the replica is closing")
        (stored,) = _INDEX.unpack(self._read(_INDEX.size))
        if stored != self.digest:
            raise SnapshotFormatError(
                f"the snapshot's digest {stored:#x} does not match its contents ({self.digest:#x})"
            )
        if self._reader.read(1):
            raise SnapshotFormatError("unexpected bytes after the end of the snapshot")
