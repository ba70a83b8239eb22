"""Snapshots through the manager: save, export, stream, recover, and damage refused."""

from __future__ import annotations

import os
import re
import shutil
import threading
from pathlib import Path
from typing import BinaryIO

import pytest

from nodehost.rsm import (
    CompressionType,
    SnapshotCorrupt,
    SnapshotError,
    SnapshotOutOfDate,
    StateMachineError,
    StateMachineManager,
)
from protos import raft_pb2 as pb
from statemachine import SnapshotFile, SnapshotFileCollection, SnapshotStopped, StateMachineType

from .conftest import MakeManager
from .machines import KV, ConcurrentKV, Counter, Log, OnDiskKV, never, stop_now

CLIENT = 77


def _session_log(n: int) -> Log:
    """Bootstrap 3 replicas (indexes 1-3), register CLIENT (4), then n commands."""
    log = Log()
    log.bootstrap(3)
    log.register(CLIENT)
    _session_cmds(log, 1, n)
    return log


def _session_cmds(log: Log, first_series: int, n: int) -> None:
    for series in range(first_series, first_series + n):
        log.session_cmd(CLIENT, series, series - 1, b"k%d=v%d" % (series % 5, series))


@pytest.mark.parametrize("compression", list(CompressionType))
def test_snapshot_restores_state_sessions_and_membership(
    make_manager: MakeManager, compression: CompressionType
) -> None:
    log = _session_log(20)
    source = KV()
    a = make_manager(source, compression=compression)
    a.apply(log.entries)
    ss = a.save_snapshot(never)
    assert (ss.index, ss.term, ss.type) == (24, 1, pb.REGULAR_STATE_MACHINE)
    assert not ss.dummy and os.path.getsize(ss.filepath) == ss.file_size and ss.checksum
    assert sorted(ss.membership.addresses) == [1, 2, 3]

    kv = KV()
    b = make_manager(kv, replica_id=2, compression=compression)
    b.recover(ss, never)
    assert kv.data == source.data and len(kv.data) == 5
    assert b.applied_index == 24 and b.hash() == a.hash() and b.membership == a.membership
    # the session table came along: the retry of series 20 is answered from it
    [r] = b.apply([log.session_cmd(CLIENT, 20, 19, b"k0=v20")])
    assert r.result.data == b"v20" and kv.seen == []


def test_nothing_new_to_snapshot(make_manager: MakeManager) -> None:
    m = make_manager(Counter())
    with pytest.raises(SnapshotOutOfDate, match="nothing"):
        m.save_snapshot(never)
    m.apply(Log().bootstrap(1))
    m.save_snapshot(never)
    with pytest.raises(SnapshotOutOfDate, match="exists"):
        m.save_snapshot(never)


def test_recover_refuses_an_older_snapshot(make_manager: MakeManager) -> None:
    log = _session_log(3)
    a = make_manager(Counter())
    a.apply(log.entries[:3])
    old = a.save_snapshot(never)
    a.apply(log.entries)
    with pytest.raises(SnapshotOutOfDate):
        a.recover(old, never)


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_damaged_snapshot_leaves_user_state_untouched(
    make_manager: MakeManager, damage: str
) -> None:
    log = _session_log(30)
    a = make_manager(KV())
    a.apply(log.entries)
    ss = a.save_snapshot(never)
    data = Path(ss.filepath).read_bytes()
    if damage == "flip":
        i = len(data) - 5
        data = data[:i] + bytes([data[i] ^ 1]) + data[i + 1 :]
    else:
        data = data[: len(data) // 2]
    Path(ss.filepath).write_bytes(data)

    kv = KV()
    b = make_manager(kv, replica_id=2)
    b.apply(Log().bootstrap(1))  # some state of its own
    before = b.hash()
    with pytest.raises(SnapshotCorrupt, match=re.escape(ss.filepath)):
        b.recover(ss, never)
    assert b.hash() == before and b.applied_index == 1 and kv.data == {}


def test_exported_snapshot_lives_outside_the_store(
    make_manager: MakeManager, tmp_path: Path
) -> None:
    a = make_manager(KV())
    a.apply(_session_log(5).entries)
    exported = a.save_snapshot(never, export_path=str(tmp_path / "export"))
    assert exported.filepath.startswith(str(tmp_path / "export"))
    assert a.snapshots.snapshots() == []
    a.save_snapshot(never)  # the store's own snapshot at the same index is still possible
    b = make_manager(KV(), replica_id=2)
    b.recover(exported, never)
    assert b.hash() == a.hash()


def test_external_files_travel_with_the_snapshot(make_manager: MakeManager, tmp_path: Path) -> None:
    attach = tmp_path / "user-files"
    attach.mkdir()
    a = make_manager(KV(attach_dir=str(attach)))
    a.apply(_session_log(5).entries)
    ss = a.save_snapshot(never)
    [f] = ss.files
    assert f.file_id == 7 and f.metadata == b"copy" and f.filepath.startswith(a.snapshots.dir)
    kv = KV()
    b = make_manager(kv, replica_id=2)
    b.recover(ss, never)
    assert [x.file_id for x in kv.recovered_files] == [7]
    # damage to an attached file is found before the user state is touched
    Path(f.filepath).write_bytes(b"{}")
    c = make_manager(KV(), replica_id=3)
    with pytest.raises(SnapshotCorrupt, match="external-file-7"):
        c.recover(ss, never)


def test_follower_installs_a_received_snapshot_and_recovers(
    make_manager: MakeManager, tmp_path: Path
) -> None:
    attach = tmp_path / "user-files"
    attach.mkdir()
    leader = make_manager(KV(attach_dir=str(attach)))
    log = _session_log(12)
    leader.apply(log.entries)
    ss = leader.save_snapshot(never)
    follower = make_manager(KV(), replica_id=2)
    recv = follower.snapshots.receive_dir(ss.index)
    for path in [ss.filepath, *(f.filepath for f in ss.files)]:  # what the transport does
        shutil.copyfile(path, os.path.join(recv, os.path.basename(path)))
    installed = follower.snapshots.install_received(ss)
    assert installed.filepath.startswith(follower.snapshots.dir)
    assert [f.filepath.startswith(follower.snapshots.dir) for f in installed.files] == [True]
    follower.recover(installed, never)
    assert follower.hash() == leader.hash()
    _session_cmds(log, 13, 3)
    leader.apply(log.entries)
    follower.apply(log.entries)
    assert follower.hash() == leader.hash()


def test_concurrent_snapshot_is_written_while_updates_go_on(make_manager: MakeManager) -> None:
    kv = ConcurrentKV()
    kv.save_gate = threading.Event()
    a = make_manager(kv, StateMachineType.CONCURRENT)
    log = _session_log(10)
    a.apply(log.entries)
    saved: list[pb.Snapshot] = []
    saving = threading.Thread(target=lambda: saved.append(a.save_snapshot(never)), daemon=True)
    saving.start()
    assert kv.in_save.wait(10)
    _session_cmds(log, 11, 5)
    a.apply(log.entries)  # not blocked by the snapshot being written
    assert a.applied_index == 19
    kv.save_gate.set()
    saving.join(10)
    [ss] = saved
    assert ss.index == 14  # the state prepare_snapshot captured
    b = make_manager(ConcurrentKV(), StateMachineType.CONCURRENT, replica_id=2)
    b.recover(ss, never)
    b.apply(log.entries)
    assert b.hash() == a.hash()


def test_snapshot_saves_run_one_at_a_time(make_manager: MakeManager) -> None:
    kv = ConcurrentKV()
    kv.save_gate = threading.Event()
    a = make_manager(kv, StateMachineType.CONCURRENT)
    a.apply(_session_log(3).entries)
    outcomes: list[object] = []

    def save() -> None:
        try:
            outcomes.append(a.save_snapshot(never))
        except SnapshotOutOfDate as e:
            outcomes.append(e)

    first = threading.Thread(target=save, daemon=True)
    first.start()
    assert kv.in_save.wait(10)
    second = threading.Thread(target=save, daemon=True)
    second.start()
    second.join(0.2)
    assert outcomes == []  # waits for the first instead of clobbering its files
    kv.save_gate.set()
    first.join(10)
    second.join(10)
    assert isinstance(outcomes[0], pb.Snapshot) and isinstance(outcomes[1], SnapshotOutOfDate)
    assert a.snapshots.latest() == outcomes[0]


def test_stopped_save_leaves_nothing_behind(make_manager: MakeManager) -> None:
    a = make_manager(Counter())
    a.apply(_session_log(3).entries)
    with pytest.raises(SnapshotStopped):
        a.save_snapshot(stop_now)
    assert os.listdir(a.snapshots.dir) == []
    a.save_snapshot(never)  # and the replica goes on


def test_user_failure_in_save_or_recover_stops_the_replica(make_manager: MakeManager) -> None:
    class BadSave(Counter):
        def save_snapshot(
            self, writer: BinaryIO, files: SnapshotFileCollection, stopped: object
        ) -> None:
            writer.write(b"partial")
            raise OSError("user's own disk trouble")

    a = make_manager(BadSave())
    a.apply(_session_log(2).entries)
    with pytest.raises(StateMachineError, match="save_snapshot"):
        a.save_snapshot(never)
    assert os.listdir(a.snapshots.dir) == []

    class BadRecover(Counter):
        def recover_from_snapshot(
            self, reader: BinaryIO, files: list[SnapshotFile], stopped: object
        ) -> None:
            raise ValueError("cannot parse")

    good = make_manager(Counter(), replica_id=2)
    good.apply(_session_log(2).entries)
    ss = good.save_snapshot(never)
    b = make_manager(BadRecover(), replica_id=3)
    with pytest.raises(StateMachineError, match="recover_from_snapshot"):
        b.recover(ss, never)
    with pytest.raises(StateMachineError, match="stopped"):
        b.apply(Log().bootstrap(1))


def test_snapshot_of_another_kind_is_refused(make_manager: MakeManager) -> None:
    a = make_manager(Counter())
    a.apply(_session_log(1).entries)
    ss = a.save_snapshot(never)
    b = make_manager(ConcurrentKV(), StateMachineType.CONCURRENT, replica_id=2)
    with pytest.raises(SnapshotError, match="REGULAR"):
        b.recover(ss, never)


def test_replicas_agree_however_they_got_there(make_manager: MakeManager) -> None:
    """One applies everything; one restores a snapshot midway; one batches differently."""
    log = _session_log(40)
    entries = log.entries
    a, b, c = (make_manager(KV(), replica_id=i) for i in (1, 2, 3))
    a.apply(entries[:20])
    ss = a.save_snapshot(never)
    a.apply(entries[20:])
    b.recover(ss, never)
    b.apply(entries)
    for i in range(0, len(entries), 3):
        c.apply(entries[i : i + 3])
    assert a.hash() == b.hash() == c.hash()
    d = make_manager(KV(), replica_id=4)
    d.apply(entries[:-1])
    assert d.hash() != a.hash()


# ---------------------------------------------------------------- on-disk kind


def _on_disk(
    make: MakeManager, directory: Path, replica_id: int = 1
) -> tuple[StateMachineManager, OnDiskKV]:
    directory.mkdir(exist_ok=True)
    sm = OnDiskKV(str(directory))
    m = make(sm, StateMachineType.ON_DISK, replica_id=replica_id)
    return m, sm


def _plain_log(n: int) -> Log:
    log = Log()
    log.bootstrap(3)
    for i in range(n):
        log.cmd(b"k%d=v%d" % (i % 4, i))
    return log


def test_on_disk_restart_skips_what_its_data_holds(
    make_manager: MakeManager, tmp_path: Path
) -> None:
    log = _plain_log(10)
    m, sm = _on_disk(make_manager, tmp_path / "d")
    assert m.open(never) == 0
    m.apply(log.entries)
    ss = m.save_snapshot(never)  # metadata only, after a sync
    assert ss.dummy and ss.filepath == "" and ss.on_disk_index == 13 and sm.syncs == 1
    log.add_node(4)
    log.cmd(b"k9=late")
    m.apply(log.entries)
    m.sync()
    expected = m.hash()

    # restart: the data holds index 15; the snapshot stands for 13; the log replays 14, 15
    m2, sm2 = _on_disk(make_manager, tmp_path / "d")
    assert m2.open(never) == 15
    m2.recover(m2.snapshots.latest() or ss, never)
    results = m2.apply(log.entries)
    assert sm2.seen == [] and [r.ignored for r in results] == [False, True]
    assert sorted(m2.membership.addresses) == [1, 2, 3, 4]
    assert m2.hash() == expected and m2.on_disk_index == 15


def test_on_disk_streamed_snapshot_carries_the_data(
    make_manager: MakeManager, tmp_path: Path
) -> None:
    m, leader_sm = _on_disk(make_manager, tmp_path / "a")
    m.open(never)
    m.apply(_plain_log(8).entries)
    dummy = m.save_snapshot(never)
    full = m.save_streamable_snapshot(never)
    assert full.index == dummy.index and not full.dummy and full.filepath
    assert m.snapshots.latest() == full  # the full one replaced the metadata-only one
    assert m.save_streamable_snapshot(never) == full  # made once

    follower, fsm = _on_disk(make_manager, tmp_path / "b", replica_id=2)
    follower.open(never)
    follower.recover(full, never)
    assert fsm.data == leader_sm.data and fsm.index == full.on_disk_index
    assert follower.on_disk_index == full.on_disk_index and follower.hash() == m.hash()


def test_on_disk_data_behind_a_metadata_snapshot_is_refused(
    make_manager: MakeManager, tmp_path: Path
) -> None:
    m, _ = _on_disk(make_manager, tmp_path / "a")
    m.open(never)
    m.apply(_plain_log(5).entries)
    dummy = m.save_snapshot(never)
    lost, _ = _on_disk(make_manager, tmp_path / "empty", replica_id=2)
    lost.open(never)
    with pytest.raises(SnapshotError, match="lost"):
        lost.recover(dummy, never)


def test_on_disk_state_machine_must_be_opened_first(
    make_manager: MakeManager, tmp_path: Path
) -> None:
    m, sm = _on_disk(make_manager, tmp_path / "a")
    for call in (lambda: m.apply(_plain_log(1).entries), lambda: m.lookup("k0"), m.sync):
        with pytest.raises(RuntimeError, match="open"):
            call()
    assert sm.seen == []
    m.open(never)
    with pytest.raises(RuntimeError, match="open already"):
        m.open(never)


def test_on_disk_export_is_full(make_manager: MakeManager, tmp_path: Path) -> None:
    m, _ = _on_disk(make_manager, tmp_path / "a")
    m.open(never)
    m.apply(_plain_log(4).entries)
    exported = m.save_snapshot(never, export_path=str(tmp_path / "exp"))
    assert not exported.dummy and os.path.isfile(exported.filepath)
