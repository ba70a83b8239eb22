"""A whole snapshot on disk: its data file, attached files and metadata, as one unit.

Rules:
- Writing: the data file and the attached files go into the store's temporary
  directory, and only a complete set is committed; any failure removes it all.
- Reading: every checksum of the data file and of every attached file is checked
  before anything is handed out, so a caller never acts on part of a damaged snapshot.
- The state machine manager decides what goes in and when; this module only assembles.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from nodehost.rsm.errors import SnapshotCorrupt
from nodehost.rsm.sessions import SessionTable, SessionTableCorrupt
from nodehost.rsm.snapshotio import CompressionType, SnapshotReader, SnapshotWriter, verify
from nodehost.rsm.store import SnapshotStore, check_external
from protos import raft_pb2 as pb
from statemachine import SnapshotFile, SnapshotFileCollection

SaveData = Callable[[SnapshotWriter, SnapshotFileCollection], None]


def write_snapshot(
    store: SnapshotStore,
    meta: pb.Snapshot,
    sessions: bytes,
    save: SaveData,
    compression: CompressionType,
    *,
    export_path: str | None = None,
    replace: bool = False,
) -> pb.Snapshot:
    """Write `meta`'s snapshot: the session table, then what `save` writes and attaches.

    Returns `meta` completed (file, size, checksum, attached files) as committed.
    """
    pending = store.begin(meta.index, export_path)
    try:
        writer = SnapshotWriter(pending.data_path, compression)
        try:
            writer.write_sessions(sessions)
            files = SnapshotFileCollection()
            save(writer, files)
            written = writer.close()
        except BaseException:
            writer.abort()
            raise
        done = pb.Snapshot()
        done.CopyFrom(meta)
        done.filepath = pending.data_path
        done.file_size = written.file_size
        done.checksum = written.checksum
        done.files.extend(pending.add_external(f) for f in files.files)
        return store.commit(pending, done, replace=replace)
    except BaseException:
        pending.abort()
        raise


@dataclass(slots=True)
class OpenSnapshot:
    """A checked snapshot, open for recovery: its sessions, its data, its files."""

    sessions: SessionTable
    reader: SnapshotReader
    files: list[SnapshotFile]


@contextmanager
def open_snapshot(snapshot: pb.Snapshot) -> Iterator[OpenSnapshot]:
    """Check every file of `snapshot`, then open it; SnapshotCorrupt names what is damaged."""
    if not snapshot.filepath:
        raise SnapshotCorrupt(f"snapshot {snapshot.index} has no data file to recover from")
    verify(snapshot.filepath, snapshot)
    for f in snapshot.files:
        check_external(f)
    files = [SnapshotFile(f.file_id, f.filepath, f.metadata) for f in snapshot.files]
    with SnapshotReader(snapshot.filepath) as reader:
        try:
            sessions = SessionTable.decode(reader.read_sessions())
        except SessionTableCorrupt as e:
            raise SnapshotCorrupt(f"{snapshot.filepath}: {e}") from e
        yield OpenSnapshot(sessions, reader, files)
