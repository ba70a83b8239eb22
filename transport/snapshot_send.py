"""Sending snapshots: each one's files, cut into checksummed chunks, over a stream of its own.

Rules:
- Transfers run in the background, at most max_snapshot_streams at once; each ends in
  exactly one handler.on_snapshot_status (none when the transport closes under it).
- Memory is flat: one chunk is read ahead while the previous one is written, whatever
  the snapshot's size. Reads and checksums run on a worker thread, never on the loop.
- Chunk order is the wire contract of SnapshotChunk (raft.proto): the snapshot file,
  then each extra file; every file ends with the sha256 of all its bytes.
- Files are named on the wire by base name only; names that clash are refused here,
  before anything is sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import zlib
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from protos import raft_pb2 as pb
from transport.config import TransportConfig
from transport.errors import describe
from transport.faults import FaultHook
from transport.frames import BIN_VERSION, varint
from transport.interface import TransportHandler
from transport.stats import TransportStats

log = logging.getLogger("transport")

_DATA_TAG = bytes((13 << 3 | 2,))  # SnapshotChunk.data: field 13, length-delimited


class SnapshotStream(Protocol):
    """One open SendSnapshot stream to a peer."""

    async def write(self, frame: bytes) -> None: ...

    async def finish(self) -> int:
        """Half-close and wait for the receiver's answer: chunks it took. Raises when it
        refused the snapshot or the stream broke."""
        ...

    async def abort(self) -> None: ...


class SnapshotSendError(Exception):
    """The snapshot cannot be sent as given (no file, clashing names, a file changed)."""


class SnapshotSender:
    def __init__(
        self,
        config: TransportConfig,
        handler: TransportHandler,
        stats: TransportStats,
        hook: Callable[[], FaultHook | None],
        open_stream: Callable[[str], Awaitable[SnapshotStream]],
    ) -> None:
        self._config = config
        self._handler = handler
        self._stats = stats
        self._hook = hook
        self._open_stream = open_stream
        self._slots: asyncio.Semaphore | None = None  # made on the loop, at first use
        self._tasks: set[asyncio.Task[None]] = set()

    def send(self, message: pb.Message, address: str) -> None:
        """Start streaming `message`'s snapshot to `address`."""
        copy = pb.Message()
        copy.CopyFrom(message)  # the engine may reuse its object
        task = asyncio.get_running_loop().create_task(self._send(copy, address))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def fail(self, message: pb.Message, why: str) -> None:
        """Report at once a snapshot that cannot even be started."""
        log.warning("snapshot for shard %d to %d not sent: %s", message.shard_id, message.to, why)
        self._report(message, failed=True)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _send(self, message: pb.Message, address: str) -> None:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._config.max_snapshot_streams)
        config = self._config
        failed = True
        try:
            async with self._slots:
                hook = self._hook()
                if hook is not None and hook.blocks(config.raft_address, address):
                    self._stats.fault_dropped += 1
                    raise ConnectionError(f"cut by the fault hook: {address}")
                async with asyncio.timeout(config.connect_timeout):
                    stream = await self._open_stream(address)
                io = ThreadPoolExecutor(1, thread_name_prefix="snapshot-send")
                try:
                    await stream_snapshot(
                        message,
                        deployment_id=config.deployment_id,
                        source_address=config.raft_address,
                        chunk_size=config.snapshot_chunk_size,
                        stream=stream,
                        io=io,
                    )
                    failed = False
                except BaseException:
                    await stream.abort()
                    raise
                finally:
                    io.shutdown(wait=False)
        except asyncio.CancelledError:
            return  # closing: the engine is going away, nobody to tell
        except Exception as e:
            log.warning(
                "snapshot %d for shard %d to %d at %s failed: %s",
                message.snapshot.index,
                message.shard_id,
                message.to,
                address,
                describe(e),
            )
        self._report(message, failed)

    def _report(self, message: pb.Message, failed: bool) -> None:
        if failed:
            self._stats.snapshots_failed += 1
        else:
            self._stats.snapshots_sent += 1
        try:
            self._handler.on_snapshot_status(message.shard_id, message.to, failed)
        except Exception:
            self._stats.handler_errors += 1
            log.exception("the engine failed on a snapshot status")


@dataclass(slots=True)
class _Piece:
    chunk_id: int
    file_index: int
    offset: int
    length: int
    last_of_file: bool


def plan(message: pb.Message) -> list[tuple[str, str]]:
    """(local path, wire name) of every file of the snapshot, in sending order."""
    snapshot = message.snapshot
    if not snapshot.filepath:
        raise SnapshotSendError(
            f"INSTALL_SNAPSHOT for shard {message.shard_id} to {message.to} has no file"
        )
    paths = [snapshot.filepath] + [f.filepath for f in snapshot.files]
    names = [os.path.basename(p) for p in paths]
    if not all(names) or len(set(names)) != len(names):
        raise SnapshotSendError(f"snapshot file names are empty or clash: {paths}")
    return list(zip(paths, names, strict=True))


def pieces(sizes: list[int], chunk_size: int) -> list[_Piece]:
    out: list[_Piece] = []
    for file_index, size in enumerate(sizes):
        offset = 0
        while True:
            length = min(chunk_size, size - offset)
            last = offset + length >= size
            out.append(_Piece(len(out), file_index, offset, length, last))
            offset += length
            if last:
                break
    return out


def _open(files: list[tuple[str, str]]) -> list[tuple[BinaryIO, int]]:
    opened: list[tuple[BinaryIO, int]] = []
    try:
        for path, _ in files:
            handle = open(path, "rb")  # noqa: SIM115 - closed by the caller
            opened.append((handle, os.fstat(handle.fileno()).st_size))
    except BaseException:
        _close(opened)
        raise
    return opened


def _read(f: BinaryIO, piece: _Piece, digest: hashlib._Hash) -> tuple[bytes, int, bytes]:
    """The piece's bytes, their crc32, and the file's sha256 when this piece ends it."""
    data = f.read(piece.length)
    if len(data) != piece.length:
        raise SnapshotSendError(f"snapshot file shrank while being sent ({f.name})")
    digest.update(data)
    return data, zlib.crc32(data), digest.digest() if piece.last_of_file else b""


async def stream_snapshot(
    message: pb.Message,
    *,
    deployment_id: int,
    source_address: str,
    chunk_size: int,
    stream: SnapshotStream,
    io: Executor,
) -> int:
    """Send every chunk of `message`'s snapshot on `stream`; return the chunk count.

    `io` must run one job at a time, in order: closing the files is queued behind a
    read that may still be running when this fails or is cancelled."""
    loop = asyncio.get_running_loop()
    files = plan(message)
    opened = await loop.run_in_executor(io, _open, files)
    pending: asyncio.Future[tuple[bytes, int, bytes]] | None = None
    try:
        sizes = [size for _, size in opened]
        todo = pieces(sizes, chunk_size)
        snapshot = message.snapshot
        template = pb.SnapshotChunk(
            shard_id=message.shard_id,
            replica_id=message.to,
            from_id=message.from_id,
            deployment_id=deployment_id,
            bin_ver=BIN_VERSION,
            index=snapshot.index,
            term=snapshot.term,
            message_term=message.term,
            chunk_count=len(todo),
            source_address=source_address,
        )
        digests = [hashlib.sha256() for _ in files]

        def read(p: _Piece) -> asyncio.Future[tuple[bytes, int, bytes]]:
            return loop.run_in_executor(
                io, _read, opened[p.file_index][0], p, digests[p.file_index]
            )

        ahead: Iterator[_Piece] = iter(todo[1:])
        pending = read(todo[0])
        for piece in todo:
            data, crc, file_digest = await pending
            following = next(ahead, None)
            if following is not None:
                pending = read(following)  # read the next piece while this one travels
            header = pb.SnapshotChunk()
            header.CopyFrom(template)
            header.chunk_id = piece.chunk_id
            header.file_index = piece.file_index
            header.file_offset = piece.offset
            header.file_size = sizes[piece.file_index]
            header.filepath = files[piece.file_index][1]
            header.chunk_checksum = crc
            header.file_checksum = file_digest
            if piece.chunk_id == 0:
                _add_metadata(header, snapshot, files, sizes)
            await stream.write(header.SerializeToString() + _DATA_TAG + varint(len(data)) + data)
        pending = None
        return await stream.finish()
    finally:
        if pending is not None:
            pending.add_done_callback(_consume)
        io.submit(_close, opened)


def _close(opened: list[tuple[BinaryIO, int]]) -> None:
    for f, _ in opened:
        f.close()


def _consume(future: asyncio.Future[tuple[bytes, int, bytes]]) -> None:
    """Retrieve the outcome of a read nobody awaits any more, so it is not reported."""
    if not future.cancelled():
        future.exception()


def _add_metadata(
    chunk: pb.SnapshotChunk,
    snapshot: pb.Snapshot,
    files: list[tuple[str, str]],
    sizes: list[int],
) -> None:
    if snapshot.HasField("membership"):
        chunk.membership.CopyFrom(snapshot.membership)
    chunk.witness = snapshot.witness
    chunk.dummy = snapshot.dummy
    chunk.on_disk_index = snapshot.on_disk_index
    chunk.type = snapshot.type
    chunk.snapshot_checksum = snapshot.checksum
    chunk.imported = snapshot.imported
    for f, (_, name), size in zip(snapshot.files, files[1:], sizes[1:], strict=True):
        chunk.files.add(file_id=f.file_id, filepath=name, file_size=size, metadata=f.metadata)
