"""Snapshots through real NodeHosts: log compaction, a member that fell behind the
compacted log catching up from a streamed snapshot, and a restart that does not apply
the whole log again."""

from __future__ import annotations

from pathlib import Path

from nodehost.sqlite import App
from tests.sqlite.support import free_addresses, wait_for


def _member(root: Path, address: str, addresses: list[str]) -> App:
    return App(
        root / address.replace(":", "_"),
        address=address,
        cluster=addresses,
        rtt_millisecond=20,
        snapshot_entries=20,
        compaction_overhead=5,
    )


def test_lagging_member_catches_up_from_a_snapshot_and_restarts_from_its_files(
    tmp_path: Path,
) -> None:
    addresses = free_addresses(3)
    apps = [_member(tmp_path, a, addresses) for a in addresses]
    try:
        for app in apps:
            app.ready(30)
        leader = wait_for(lambda: apps[0].leader(), what="a leader")
        lagging = next(app for app in apps if app.id != leader.id)
        writer_app = next(app for app in apps if app is not lagging)
        connection = writer_app.open("snap", isolation_level=None)
        connection.execute(
            "CREATE TABLE s (id INTEGER PRIMARY KEY, v, at DEFAULT CURRENT_TIMESTAMP)"
        )
        lagging.close()
        for _ in range(120):  # six snapshots' worth: the log it misses is compacted away
            connection.execute("INSERT INTO s (v) VALUES (randomblob(16))")
        snapshots = writer_app.dir / "raft"
        assert any(snapshots.rglob("snapshot-*")), "the leader took snapshots"
        index = lagging.dir
        lagging = _member(tmp_path, lagging.address, addresses)
        apps = [app if app.id != lagging.id else lagging for app in apps]
        wait_for(lambda: lagging.applied_index() >= writer_app.applied_index(), what="catch up")
        assert lagging.state.state_dir.name != "state-0", "it recovered a snapshot"
        assert lagging.open("snap", consistency="none").execute(
            "SELECT count(*) FROM s"
        ).fetchone() == (120,)
        wait_for(lambda: lagging.state_hash() == writer_app.state_hash(), what="identical files")
        # A clean restart finds everything in its files: no entry is applied again.
        applied = lagging.applied_index()
        lagging.close()
        lagging = _member(tmp_path, lagging.address, addresses)
        apps = [app if app.id != lagging.id else lagging for app in apps]
        assert lagging.state.opened_index >= applied
        assert index == lagging.dir
        wait_for(lambda: lagging.state_hash() == writer_app.state_hash(), what="same after restart")
    finally:
        for app in apps:
            app.close()
