"""The snapshot store: whole snapshots only, crash leftovers cleaned, few kept."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nodehost.rsm import CompressionType, SnapshotCorrupt, SnapshotOutOfDate, SnapshotStore
from nodehost.rsm.snapshotio import SnapshotWriter
from nodehost.rsm.store import KEEP_SNAPSHOTS, snapshot_dir_name
from protos import raft_pb2 as pb
from statemachine import SnapshotFile


def save(store: SnapshotStore, index: int, data: bytes = b"data", **kw: object) -> pb.Snapshot:
    pending = store.begin(index)
    w = SnapshotWriter(pending.data_path, CompressionType.NONE)
    w.write_sessions(b"")
    w.data().write(data)
    written = w.close()
    meta = pb.Snapshot(
        shard_id=1,
        index=index,
        term=2,
        filepath=pending.data_path,
        file_size=written.file_size,
        checksum=written.checksum,
    )
    return store.commit(pending, meta, **kw)  # type: ignore[arg-type]


def test_committed_snapshot_is_listed_with_absolute_paths(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path / "snaps"), 1, 2)
    ss = save(store, 10)
    assert ss.filepath.startswith(store.dir) and os.path.isfile(ss.filepath)
    assert os.listdir(store.dir) == [snapshot_dir_name(10)]
    assert store.latest() == ss and store.get(10) == ss and store.get(11) is None
    with pytest.raises(SnapshotOutOfDate):
        save(store, 10)
    assert os.listdir(store.dir) == [snapshot_dir_name(10)]  # the failed attempt left nothing


def test_only_the_newest_are_kept(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path), 1, 1)
    for index in (5, 10, 15, 20, 25):
        save(store, index)
    assert [s.index for s in store.snapshots()] == [10, 15, 20, 25][-KEEP_SNAPSHOTS:]
    save(store, 3)  # an older one just made is still kept (it may be about to be used)
    assert 3 in [s.index for s in store.snapshots()]


def test_crash_leftovers_are_cleaned_or_restored(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path), 1, 1)
    save(store, 10)
    save(store, 20)
    d = Path(store.dir)
    (d / (snapshot_dir_name(30) + ".generating")).mkdir()
    (d / (snapshot_dir_name(30) + ".receiving")).mkdir()
    (d / (snapshot_dir_name(5) + ".deleting")).mkdir()
    # a crash in the middle of replacing 10 and 20: 10's new copy never arrived
    os.replace(d / snapshot_dir_name(10), d / (snapshot_dir_name(10) + ".replaced"))
    (d / (snapshot_dir_name(20) + ".replaced")).mkdir()
    reopened = SnapshotStore(str(tmp_path), 1, 1)
    assert sorted(os.listdir(reopened.dir)) == [snapshot_dir_name(10), snapshot_dir_name(20)]
    assert [s.index for s in reopened.snapshots()] == [10, 20]


def test_damaged_metadata_is_reported_and_skipped(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path), 1, 1)
    save(store, 10)
    save(store, 20)
    meta = Path(store.dir) / snapshot_dir_name(20) / "snapshot.metadata"
    meta.write_bytes(meta.read_bytes()[:-1])
    assert [s.index for s in store.snapshots()] == [10]
    with pytest.raises(SnapshotCorrupt, match=r"snapshot\.metadata"):
        store.get(20)


def test_received_snapshot_is_checked_then_installed(tmp_path: Path) -> None:
    sender = SnapshotStore(str(tmp_path / "a"), 1, 1)
    receiver = SnapshotStore(str(tmp_path / "b"), 1, 2)
    ss = save(sender, 40, b"x" * 5000)
    recv = receiver.receive_dir(40)
    # a hostile or confused sender: only the base name of a path is ever used
    sent = pb.Snapshot()
    sent.CopyFrom(ss)
    sent.filepath = "../../../" + os.path.basename(ss.filepath)
    data = Path(ss.filepath).read_bytes()
    Path(recv, os.path.basename(ss.filepath)).write_bytes(data[:-1] + b"?")
    with pytest.raises(SnapshotCorrupt):
        receiver.install_received(sent)
    assert receiver.snapshots() == []
    Path(recv, os.path.basename(ss.filepath)).write_bytes(data)
    Path(recv, "stray.tmp").write_bytes(b"partial")
    installed = receiver.install_received(sent)
    assert installed.filepath.startswith(receiver.dir) and installed.index == 40
    assert set(os.listdir(os.path.dirname(installed.filepath))) == {
        os.path.basename(ss.filepath),
        "snapshot.metadata",
    }
    assert receiver.latest() == installed


def test_external_files_are_linked_and_checked(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path / "s"), 1, 1)
    user_file = tmp_path / "user.bin"
    user_file.write_bytes(b"external data")
    pending = store.begin(7)
    f = pending.add_external(SnapshotFile(3, str(user_file), b"meta"))
    assert f.file_size == 13 and len(f.checksum) == 32
    assert os.stat(f.filepath).st_ino == os.stat(user_file).st_ino  # hard-linked
    with pytest.raises(Exception, match="does not exist"):
        pending.add_external(SnapshotFile(4, str(tmp_path / "missing"), b""))
    pending.abort()
    assert os.listdir(store.dir) == []


def test_remove_all_deletes_the_replica_directory(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path), 4, 5)
    save(store, 1)
    store.remove_all()
    assert not os.path.exists(store.dir) and os.listdir(tmp_path) == []


def test_metadata_only_snapshot_can_be_received(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path), 1, 1)
    installed = store.install_received(pb.Snapshot(shard_id=1, index=9, term=3, witness=True))
    assert installed.witness and installed.filepath == "" and store.latest() == installed


def test_a_transfer_cut_by_a_crash_is_cleaned_up(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path), 1, 1)
    leftover = Path(store.receive_dir(7) + ".receiving-0a1b2c")
    leftover.mkdir()
    (leftover / "part").write_bytes(b"half a snapshot")
    SnapshotStore(str(tmp_path), 1, 1)
    assert not leftover.exists()
