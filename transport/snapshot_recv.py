"""Receiving snapshot streams: check every chunk, write to a temporary directory, and
rename it into place only when the last byte has arrived and checked out.

Rules:
- Nothing usable is left behind by a transfer that fails, is refused, stalls, or is
  cut off: the temporary directory (`<dir>.receiving-<random>`) is removed, and the
  engine hears of the snapshot only after the rename (see on_snapshot_received).
- Chunks must come in the order raft.proto gives, each with a good crc32, every file
  ending with its sha256; file names are base names; anything else ends the transfer
  with a counted, logged rejection.
- Memory is flat: one chunk being written while the next one arrives. Disk writes,
  checksums and fsyncs run on a worker thread of the transfer's own, in order, never
  on the loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
import shutil
import zlib
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO, TypeVar

from google.protobuf.message import DecodeError

from protos import raft_pb2 as pb
from transport.config import TransportConfig
from transport.faults import FaultHook
from transport.frames import BIN_VERSION
from transport.interface import TransportHandler
from transport.stats import Reject, TransportStats

log = logging.getLogger("transport")

T = TypeVar("T")

RECEIVING = ".receiving-"  # marks a temporary directory; never a complete snapshot


class SnapshotRejected(Exception):
    """The transfer was refused; `reason` None means a test fault hook cut it."""

    def __init__(self, reason: Reject | None, detail: str) -> None:
        super().__init__(f"{reason or 'cut by fault hook'}: {detail}")
        self.reason = reason
        self.detail = detail


def safe_name(name: str) -> bool:
    """A plain file name: no directory part, not a special entry."""
    return (
        bool(name)
        and name not in (".", "..")
        and "/" not in name
        and "\\" not in name
        and "\x00" not in name
        and os.path.basename(name) == name
    )


class SnapshotInbox:
    """Accepts snapshot streams on behalf of the engine, a bounded number at a time."""

    def __init__(
        self,
        config: TransportConfig,
        handler: TransportHandler,
        stats: TransportStats,
        hook: Callable[[], FaultHook | None],
    ) -> None:
        self._config = config
        self._handler = handler
        self._stats = stats
        self._hook = hook
        self._active = 0

    async def receive(self, frames: AsyncIterator[bytes]) -> int:
        """Take one stream of SnapshotChunk frames; return the chunk count on success,
        raise SnapshotRejected (already counted and logged) otherwise."""
        try:
            if self._active >= self._config.max_snapshot_streams:
                raise SnapshotRejected(Reject.BUSY, f"{self._active} transfers running")
            self._active += 1
            try:
                return await _Transfer(self._config, self._handler, self._hook(), frames).run()
            finally:
                self._active -= 1
        except SnapshotRejected as e:
            if e.reason is None:
                self._stats.fault_dropped += 1
            else:
                self._stats.reject(e.reason, e.detail)
            raise
        except asyncio.CancelledError:
            self._stats.reject(Reject.INCOMPLETE, "snapshot stream cancelled by its peer")
            raise
        except Exception:  # the engine's on_snapshot_received, or a bug here
            self._stats.handler_errors += 1
            log.exception("taking an incoming snapshot failed")
            raise


class _Transfer:
    def __init__(
        self,
        config: TransportConfig,
        handler: TransportHandler,
        hook: FaultHook | None,
        frames: AsyncIterator[bytes],
    ) -> None:
        self._config = config
        self._handler = handler
        self._hook = hook
        self._frames = frames
        self._io = ThreadPoolExecutor(1, thread_name_prefix="snapshot-recv")
        self._disk = _Disk()  # used on the io thread only
        self._writing: tuple[int, asyncio.Future[bool]] | None = None  # chunk id, its write
        self._tmp = ""

    async def _next(self) -> pb.SnapshotChunk | None:
        try:
            async with asyncio.timeout(self._config.snapshot_chunk_timeout):
                frame = await anext(self._frames, None)
        except TimeoutError:
            raise SnapshotRejected(
                Reject.INCOMPLETE, f"no chunk for {self._config.snapshot_chunk_timeout} s"
            ) from None
        if frame is None:
            return None
        if len(frame) > self._config.max_message_size:
            raise SnapshotRejected(Reject.OVERSIZED, f"{len(frame)} byte chunk")
        try:
            return pb.SnapshotChunk.FromString(frame)
        except DecodeError as e:
            raise SnapshotRejected(Reject.MALFORMED, f"undecodable chunk: {e}") from None

    def _submit(self, fn: Callable[..., T], *args: object) -> asyncio.Future[T]:
        """Start `fn` on the transfer's io thread, after everything started before."""
        future = asyncio.get_running_loop().run_in_executor(self._io, fn, *args)
        future.add_done_callback(_consume)  # a failure nobody awaits is not reported twice
        return future

    async def _run_io(self, fn: Callable[..., T], *args: object) -> T:
        """Run `fn` on the transfer's io thread; a failing disk refuses the transfer."""
        try:
            return await self._submit(fn, *args)
        except OSError as e:
            raise SnapshotRejected(Reject.STORAGE, f"{e} (under {self._tmp})") from None

    async def _settle(self) -> None:
        """Wait for the chunk being written; a bad crc32 refuses the transfer."""
        if self._writing is None:
            return
        chunk_id, future = self._writing
        self._writing = None
        try:
            ok = await future
        except OSError as e:
            raise SnapshotRejected(Reject.STORAGE, f"{e} (under {self._tmp})") from None
        if not ok:
            raise SnapshotRejected(Reject.BAD_CHECKSUM, f"chunk {chunk_id} crc32 mismatch")

    async def run(self) -> int:
        try:
            first = await self._next()
            if first is None:
                raise SnapshotRejected(Reject.INCOMPLETE, "stream ended before its first chunk")
            final_dir, names = self._check_first(first)
            # Named before it exists: a cancel while it is being made still removes it.
            self._tmp = f"{final_dir}{RECEIVING}{secrets.token_hex(6)}"
            await self._run_io(_make_dir, self._tmp)
            sizes = await self._receive_files(first, names)
            extra = await self._next()
            if extra is not None:
                raise SnapshotRejected(
                    Reject.OUT_OF_ORDER, f"chunk {extra.chunk_id} after the last one"
                )
            where = await self._run_io(_finalize, self._tmp, final_dir)
            self._tmp = ""
            self._handler.on_snapshot_received(_install_message(first, where, names, sizes))
            return first.chunk_count
        finally:
            # Queued behind any write still running, so the directory goes after it;
            # awaited (shielded, even when cancelled) so that once this returns, the
            # failed transfer has left nothing on disk.
            cleanup = asyncio.get_running_loop().run_in_executor(
                self._io, self._disk.discard, self._tmp
            )
            self._io.shutdown(wait=False)
            await asyncio.shield(cleanup)

    def _check_first(self, c: pb.SnapshotChunk) -> tuple[str, list[str]]:
        source = f"{c.source_address!r} (shard {c.shard_id}, {c.from_id} -> {c.replica_id})"
        if c.deployment_id != self._config.deployment_id:
            raise SnapshotRejected(
                Reject.WRONG_DEPLOYMENT, f"snapshot of deployment {c.deployment_id} from {source}"
            )
        if c.bin_ver != BIN_VERSION:
            raise SnapshotRejected(Reject.WRONG_VERSION, f"snapshot version {c.bin_ver}")
        if self._hook is not None and self._hook.blocks(
            c.source_address, self._config.raft_address
        ):
            raise SnapshotRejected(None, f"snapshot from {source}")
        if c.chunk_id != 0:
            raise SnapshotRejected(
                Reject.OUT_OF_ORDER, f"first chunk is {c.chunk_id} from {source}"
            )
        if not c.from_id or not c.replica_id or c.chunk_count < 1 + len(c.files):
            raise SnapshotRejected(Reject.BAD_FIELD, f"snapshot header from {source}")
        names = [c.filepath] + [f.filepath for f in c.files]
        if not all(safe_name(n) for n in names) or len(set(names)) != len(names):
            raise SnapshotRejected(Reject.BAD_PATH, f"file names {names} from {source}")
        final_dir = self._handler.snapshot_dir(c.shard_id, c.replica_id, c.index)
        if final_dir is None:
            raise SnapshotRejected(Reject.NOT_HOSTED, f"snapshot {c.index} from {source}")
        return final_dir, names

    async def _receive_files(self, first: pb.SnapshotChunk, names: list[str]) -> list[int]:
        """Write every chunk; return the size of each file. The next chunk is received
        and checked while the previous one is being checksummed and written."""
        sizes: list[int] = []
        written = 0
        digest = hashlib.sha256()
        chunk: pb.SnapshotChunk | None = first
        for chunk_id in range(first.chunk_count):
            if chunk is None:
                chunk = await self._next()
                if chunk is None:
                    raise SnapshotRejected(
                        Reject.INCOMPLETE,
                        f"stream ended at chunk {chunk_id} of {first.chunk_count}",
                    )
            _check_identity(chunk, first, chunk_id)
            file_index = len(sizes) - 1
            if file_index < 0 or (written == sizes[file_index] and chunk.file_index != file_index):
                # The previous file is complete: this chunk must open the next one.
                file_index += 1
                if chunk.file_index != file_index or file_index >= len(names):
                    raise SnapshotRejected(
                        Reject.OUT_OF_ORDER, f"chunk {chunk_id} is for file {chunk.file_index}"
                    )
                sizes.append(chunk.file_size)
                written = 0
                digest = hashlib.sha256()
                await self._run_io(self._disk.open_next, os.path.join(self._tmp, names[file_index]))
            if chunk.file_index != file_index or chunk.file_offset != written:
                raise SnapshotRejected(
                    Reject.OUT_OF_ORDER,
                    f"chunk {chunk_id} at file {chunk.file_index} offset {chunk.file_offset}, "
                    f"expected file {file_index} offset {written}",
                )
            if chunk.filepath != names[file_index] or chunk.file_size != sizes[file_index]:
                raise SnapshotRejected(Reject.BAD_FIELD, f"chunk {chunk_id} changes its file")
            size = sizes[file_index]
            data = chunk.data
            if len(data) > size - written or (not data and size != 0):
                raise SnapshotRejected(Reject.BAD_FIELD, f"chunk {chunk_id} overruns its file")
            await self._settle()
            self._writing = (
                chunk_id,
                self._submit(self._disk.write, data, chunk.chunk_checksum, digest),
            )
            written += len(data)
            if written == size:
                await self._settle()
                if digest.digest() != chunk.file_checksum:
                    raise SnapshotRejected(
                        Reject.BAD_CHECKSUM, f"file {names[file_index]!r} sha256 mismatch"
                    )
            chunk = None
        if len(sizes) != len(names) or written != sizes[-1]:
            raise SnapshotRejected(
                Reject.INCOMPLETE, f"{first.chunk_count} chunks end before the last file does"
            )
        await self._run_io(self._disk.open_next, "")
        return sizes


def _check_identity(c: pb.SnapshotChunk, first: pb.SnapshotChunk, chunk_id: int) -> None:
    if c.chunk_id != chunk_id:
        raise SnapshotRejected(Reject.OUT_OF_ORDER, f"chunk {c.chunk_id} where {chunk_id} was due")
    if (c.shard_id, c.replica_id, c.from_id, c.index, c.term, c.chunk_count) != (
        first.shard_id,
        first.replica_id,
        first.from_id,
        first.index,
        first.term,
        first.chunk_count,
    ):
        raise SnapshotRejected(Reject.BAD_FIELD, f"chunk {chunk_id} belongs to another transfer")


_WRITEBACK_EVERY = 8 * 1024 * 1024
_FADV_DONTNEED: int | None = getattr(os, "POSIX_FADV_DONTNEED", None)


def _consume(future: asyncio.Future[T]) -> None:
    if not future.cancelled():
        future.exception()


class _Disk:
    """The files of one transfer; every method runs on the transfer's io thread."""

    def __init__(self) -> None:
        self._file: BinaryIO | None = None
        self._written = 0  # bytes of the current file
        self._kicked = 0  # bytes of it whose writeback has been started

    def open_next(self, path: str) -> None:
        """Make the current file durable and close it; open `path` ("" for none)."""
        if self._file is not None:
            self._file.flush()
            os.fdatasync(self._file.fileno())
            self._file.close()
            self._file = None
        if path:
            self._file = open(path, "xb")  # noqa: SIM115 - closed by open_next or discard
            self._written = self._kicked = 0

    def write(self, data: bytes, crc: int, digest: hashlib._Hash) -> bool:
        """Write `data` if its crc32 is `crc`; False (and nothing written) otherwise."""
        if zlib.crc32(data) != crc:
            return False
        f = self._file
        assert f is not None
        digest.update(data)
        f.write(data)
        self._written += len(data)
        if self._written - self._kicked >= _WRITEBACK_EVERY and _FADV_DONTNEED is not None:
            # Start writing the new bytes back now, without waiting (on Linux, DONTNEED
            # on dirty pages starts their writeback): the disk works while the network
            # does, and the fdatasync at the end of the file has little left to do.
            f.flush()
            os.posix_fadvise(f.fileno(), self._kicked, self._written - self._kicked, _FADV_DONTNEED)
            self._kicked = self._written
        return True

    def discard(self, tmp: str) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def _make_dir(tmp: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(tmp)), exist_ok=True)
    os.mkdir(tmp)


def _finalize(tmp: str, final_dir: str) -> str:
    """Rename the complete directory into place, durably; return where it now is. When a
    complete copy is already there (an earlier transfer of the same snapshot), keep it."""
    parent = os.path.dirname(os.path.abspath(final_dir))
    _fsync_dir(tmp)
    try:
        os.rename(tmp, final_dir)
    except OSError:
        if not os.path.isdir(final_dir):
            raise
        log.info("snapshot %s arrived again; keeping the copy already in place", final_dir)
        shutil.rmtree(tmp, ignore_errors=True)
    _fsync_dir(parent)
    return final_dir


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _install_message(
    c: pb.SnapshotChunk, where: str, names: list[str], sizes: list[int]
) -> pb.Message:
    snapshot = pb.Snapshot(
        shard_id=c.shard_id,
        index=c.index,
        term=c.term,
        membership=c.membership if c.HasField("membership") else None,
        filepath=os.path.join(where, names[0]),
        file_size=sizes[0],
        checksum=c.snapshot_checksum,
        type=c.type,
        on_disk_index=c.on_disk_index,
        dummy=c.dummy,
        witness=c.witness,
        imported=c.imported,
    )
    for f, name, size in zip(c.files, names[1:], sizes[1:], strict=True):
        snapshot.files.add(
            file_id=f.file_id,
            filepath=os.path.join(where, name),
            file_size=size,
            metadata=f.metadata,
        )
    return pb.Message(
        type=pb.INSTALL_SNAPSHOT,
        to=c.replica_id,
        from_id=c.from_id,
        shard_id=c.shard_id,
        term=c.message_term,
        snapshot=snapshot,
    )
