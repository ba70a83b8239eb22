"""One replica's snapshot directory: snapshots appear whole or not at all.

Layout under `<root>/snapshot-<shard>-<replica>/`:

    snapshot-<index %016X>/              a complete snapshot
        snapshot-<index %016X>.snap      session table and user data (snapshotio)
        external-file-<file id>          files the user attached, hard-linked or copied
        snapshot.metadata                crc32 | pb.Snapshot (file names relative)
    snapshot-<index>.generating/         being saved here
    snapshot-<index>.receiving/          being received by the transport
    snapshot-<index>.replaced/           an older copy at that index, being replaced
    snapshot-<index>.deleting/           being removed

Rules:
- A snapshot is written into a temporary directory, every file and the directory are
  fsynced, and one rename makes it complete; the parent is fsynced after the rename.
  So a crash leaves either the old state or the new one, never a half snapshot.
- Creating the store cleans up after a crash: temporary directories are removed, and
  a `.replaced` directory goes back to its place if its replacement never arrived.
  Create the store before the replica can receive snapshots.
- Only the newest KEEP_SNAPSHOTS complete snapshots are kept (`on_removed` hears of
  each one deleted). Exported snapshots live outside the store and are never touched
  by it.
- Metadata on disk names files relative to their directory, so a data directory can
  move; the pb.Snapshot values handed out carry absolute paths.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import struct
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from nodehost.rsm.errors import SnapshotCorrupt, SnapshotError, SnapshotOutOfDate
from nodehost.rsm.snapshotio import verify
from protos import raft_pb2 as pb
from statemachine import SnapshotFile

log = logging.getLogger("nodehost.rsm")

KEEP_SNAPSHOTS = 3
METADATA_FILE = "snapshot.metadata"
_CRC = struct.Struct(">I")
_NAME = re.compile(r"^snapshot-([0-9A-F]{16})(\..*)?$")
_GENERATING, _RECEIVING, _REPLACED, _DELETING = (
    ".generating",
    ".receiving",
    ".replaced",
    ".deleting",
)


def snapshot_dir_name(index: int) -> str:
    return f"snapshot-{index:016X}"


def data_file_name(index: int) -> str:
    return f"snapshot-{index:016X}.snap"


def external_file_name(file_id: int) -> str:
    return f"external-file-{file_id}"


@dataclass(slots=True)
class PendingSnapshot:
    """A snapshot being written: its temporary directory and where it will end up."""

    index: int
    temp_dir: str
    final_dir: str
    exported: bool

    @property
    def data_path(self) -> str:
        return os.path.join(self.temp_dir, data_file_name(self.index))

    def add_external(self, f: SnapshotFile) -> pb.SnapshotFile:
        """Bring a user's finished file into the snapshot (hard link, else copy)."""
        target = os.path.join(self.temp_dir, external_file_name(f.file_id))
        try:
            os.link(f.filepath, target)
        except FileNotFoundError:
            raise SnapshotError(f"snapshot file {f.filepath} does not exist") from None
        except OSError:
            shutil.copyfile(f.filepath, target)
        size, digest = _file_digest(target, sync=True)
        return pb.SnapshotFile(
            file_id=f.file_id,
            filepath=target,
            file_size=size,
            metadata=f.metadata,
            checksum=digest,
        )

    def abort(self) -> None:
        shutil.rmtree(self.temp_dir, ignore_errors=True)


class SnapshotStore:
    """The snapshot directory of one replica. Thread-safe."""

    def __init__(
        self,
        root: str,
        shard_id: int,
        replica_id: int,
        on_removed: Callable[[int], None] | None = None,
    ) -> None:
        self.shard_id = shard_id
        self.replica_id = replica_id
        self._on_removed = on_removed
        self.dir = store_dir(root, shard_id, replica_id)
        self._lock = threading.Lock()
        removing = self.dir + _DELETING
        if os.path.exists(removing):
            shutil.rmtree(removing)
        os.makedirs(self.dir, exist_ok=True)
        self._recover_dirs()

    # ------------------------------------------------------------------ reading

    def snapshots(self) -> list[pb.Snapshot]:
        """Complete snapshots, oldest first. A damaged one is logged and left out."""
        with self._lock:
            out = []
            for index in self._complete_indexes():
                try:
                    out.append(self._load(index))
                except SnapshotCorrupt as e:
                    log.warning("snapshot store %s: %s", self.dir, e)
            return out

    def latest(self) -> pb.Snapshot | None:
        snapshots = self.snapshots()
        return snapshots[-1] if snapshots else None

    def get(self, index: int) -> pb.Snapshot | None:
        """The complete snapshot at `index`; SnapshotCorrupt if its metadata is damaged."""
        with self._lock:
            if not os.path.isdir(os.path.join(self.dir, snapshot_dir_name(index))):
                return None
            return self._load(index)

    # ------------------------------------------------------------------ writing

    def begin(self, index: int, export_path: str | None = None) -> PendingSnapshot:
        """A fresh temporary directory for a snapshot at `index`."""
        parent = os.path.abspath(export_path) if export_path is not None else self.dir
        os.makedirs(parent, exist_ok=True)
        final_dir = os.path.join(parent, snapshot_dir_name(index))
        temp_dir = final_dir + _GENERATING
        shutil.rmtree(temp_dir, ignore_errors=True)
        os.makedirs(temp_dir)
        return PendingSnapshot(index, temp_dir, final_dir, export_path is not None)

    def commit(
        self, pending: PendingSnapshot, snapshot: pb.Snapshot, *, replace: bool = False
    ) -> pb.Snapshot:
        """Make the pending snapshot complete; returns its metadata with final paths.

        `replace` allows a snapshot already complete at that index to be superseded
        (an on-disk state machine's full snapshot replaces its metadata-only one).
        """
        with self._lock:
            if os.path.exists(pending.final_dir) and not (replace or pending.exported):
                pending.abort()
                raise SnapshotOutOfDate(f"a snapshot at index {pending.index} exists already")
            final = _relocate(snapshot, pending.temp_dir, pending.final_dir)
            _write_metadata(pending.temp_dir, _relocate(snapshot, pending.temp_dir, ""))
            _fsync_dir(pending.temp_dir)
            _swap_in(pending.temp_dir, pending.final_dir)
            if not pending.exported:
                self._retain(KEEP_SNAPSHOTS, pending.index)
            return final

    def receive_dir(self, index: int) -> str:
        """Where the transport writes the files of an incoming snapshot at `index`."""
        path = os.path.join(self.dir, snapshot_dir_name(index) + _RECEIVING)
        os.makedirs(path, exist_ok=True)
        return path

    def install_received(self, snapshot: pb.Snapshot) -> pb.Snapshot:
        """Check a received snapshot and make it complete; returns its local metadata.

        The files are looked up by base name in `receive_dir(snapshot.index)`; every
        checksum is checked first, so a damaged transfer is never installed.
        """
        recv = os.path.join(self.dir, snapshot_dir_name(snapshot.index) + _RECEIVING)
        local = _relocate(snapshot, None, recv)
        if local.filepath:
            verify(local.filepath, local)
        for f in local.files:
            check_external(f)
        for name in os.listdir(recv) if os.path.isdir(recv) else []:
            if name not in _names(local):
                os.remove(os.path.join(recv, name))
        os.makedirs(recv, exist_ok=True)
        for path in _paths(local):
            _fsync_file(path)
        final_dir = os.path.join(self.dir, snapshot_dir_name(snapshot.index))
        return self.commit(
            PendingSnapshot(snapshot.index, recv, final_dir, False), local, replace=True
        )

    def remove_all(self) -> None:
        """Delete every snapshot of this replica (its data is being removed)."""
        with self._lock:
            removing = self.dir + _DELETING
            if os.path.exists(self.dir):
                os.replace(self.dir, removing)
                _fsync_dir(os.path.dirname(self.dir))
                shutil.rmtree(removing)

    # ------------------------------------------------------------------ internals

    def _complete_indexes(self) -> list[int]:
        return complete_indexes(self.dir)

    def _load(self, index: int) -> pb.Snapshot:
        directory = os.path.join(self.dir, snapshot_dir_name(index))
        return _relocate(_read_metadata(directory), None, directory)

    def _retain(self, keep: int, newest: int) -> None:
        """Keep the `keep` newest snapshots, and always the one just made (`newest`)."""
        for index in self._complete_indexes()[:-keep]:
            if index == newest:
                continue
            path = os.path.join(self.dir, snapshot_dir_name(index))
            os.replace(path, path + _DELETING)
            shutil.rmtree(path + _DELETING)
            if self._on_removed is not None:
                self._on_removed(index)

    def _recover_dirs(self) -> None:
        """Undo what a crash left behind (see the module rules)."""
        for name in os.listdir(self.dir):
            m = _NAME.match(name)
            if not m or m.group(2) is None:
                continue
            path = os.path.join(self.dir, name)
            final = os.path.join(self.dir, f"snapshot-{m.group(1)}")
            if m.group(2) == _REPLACED and not os.path.exists(final):
                os.replace(path, final)
            else:
                shutil.rmtree(path, ignore_errors=True)
        _fsync_dir(self.dir)


def store_dir(root: str, shard_id: int, replica_id: int) -> str:
    """Where the SnapshotStore made with `root` keeps its snapshots."""
    return os.path.join(os.path.abspath(root), f"snapshot-{shard_id}-{replica_id}")


def complete_indexes(directory: str) -> list[int]:
    """Indexes of the complete snapshots in a store's directory, oldest first; reads only."""
    indexes = []
    for name in os.listdir(directory):
        m = _NAME.match(name)
        if m and m.group(2) is None:
            indexes.append(int(m.group(1), 16))
    return sorted(indexes)


def read_snapshot_dir(directory: str) -> pb.Snapshot:
    """The metadata of the complete snapshot in `directory` (a store's or an exported
    one), with absolute file paths. Reads only; SnapshotCorrupt when it is damaged."""
    directory = os.path.abspath(directory)
    return _relocate(_read_metadata(directory), None, directory)


def verify_files(snapshot: pb.Snapshot) -> None:
    """Check every file of `snapshot` against its metadata (sizes and digests), reading
    each once; SnapshotCorrupt names the first one that does not match."""
    if snapshot.filepath:
        verify(snapshot.filepath, snapshot)
    for f in snapshot.files:
        check_external(f)


def _swap_in(temp_dir: str, final_dir: str) -> None:
    parent = os.path.dirname(final_dir)
    replaced = final_dir + _REPLACED
    if os.path.exists(final_dir):
        shutil.rmtree(replaced, ignore_errors=True)
        os.replace(final_dir, replaced)
    os.replace(temp_dir, final_dir)
    _fsync_dir(parent)
    shutil.rmtree(replaced, ignore_errors=True)


def _relocate(snapshot: pb.Snapshot, old_dir: str | None, new_dir: str) -> pb.Snapshot:
    """A copy whose file paths are in `new_dir` ("" = bare names).

    With `old_dir` None only base names are kept from the given paths: a path from
    elsewhere (a sender's disk, a metadata file) never points outside `new_dir`.
    """

    def move(path: str) -> str:
        if not path:
            return ""
        name = os.path.basename(path) if old_dir is None else os.path.relpath(path, old_dir)
        if name in ("", ".", "..") or os.sep in name:
            raise SnapshotCorrupt(f"snapshot file name {path!r} is not a plain file name")
        return os.path.join(new_dir, name) if new_dir else name

    out = pb.Snapshot()
    out.CopyFrom(snapshot)
    out.filepath = move(snapshot.filepath)
    for f in out.files:
        f.filepath = move(f.filepath)
    return out


def _names(snapshot: pb.Snapshot) -> set[str]:
    return {os.path.basename(p) for p in _paths(snapshot)}


def _paths(snapshot: pb.Snapshot) -> list[str]:
    paths = [f.filepath for f in snapshot.files]
    return [snapshot.filepath, *paths] if snapshot.filepath else paths


def check_external(f: pb.SnapshotFile) -> None:
    """Raise SnapshotCorrupt unless an attached file has its recorded size and digest."""
    try:
        size, digest = _file_digest(f.filepath, sync=False)
    except FileNotFoundError:
        raise SnapshotCorrupt(f"{f.filepath}: snapshot file is missing") from None
    if size != f.file_size:
        raise SnapshotCorrupt(f"{f.filepath}: {size} bytes, its metadata says {f.file_size}")
    if f.checksum and digest != f.checksum:
        raise SnapshotCorrupt(f"{f.filepath}: content digest mismatch")


def _write_metadata(directory: str, snapshot: pb.Snapshot) -> None:
    encoded = snapshot.SerializeToString()
    path = os.path.join(directory, METADATA_FILE)
    with open(path, "wb") as f:
        f.write(_CRC.pack(zlib.crc32(encoded)) + encoded)
        f.flush()
        os.fsync(f.fileno())


def _read_metadata(directory: str) -> pb.Snapshot:
    path = os.path.join(directory, METADATA_FILE)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise SnapshotCorrupt(f"{path}: snapshot metadata is missing") from None
    if len(data) < _CRC.size or zlib.crc32(data[_CRC.size :]) != _CRC.unpack_from(data)[0]:
        raise SnapshotCorrupt(f"{path}: snapshot metadata checksum mismatch")
    snapshot = pb.Snapshot()
    snapshot.ParseFromString(data[_CRC.size :])
    return snapshot


def _file_digest(path: str, *, sync: bool) -> tuple[int, bytes]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
        if sync:
            os.fsync(f.fileno())
    return size, digest.digest()


def _fsync_file(path: str) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: str) -> None:
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
