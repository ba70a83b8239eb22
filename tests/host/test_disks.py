"""Disks that refuse writes, seen by a whole NodeHost.

A read-only or full data directory is named at start, in an InvalidConfig, not found at
the first write. A snapshot that cannot be written because the disk is full fails that
snapshot only: the replica goes on serving, says so in the log and the metrics, and
writes its next snapshot once there is room again.

The disks are real: small tmpfs file systems mounted for the test (root only; CI runs
as root), filled with a balloon file and remounted read-only. Where mounting is not
allowed the tests are skipped, never faked.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nodehost import Aborted, InvalidConfig, NodeHost, NodeHostConfig, ResultCode
from tests.host.cluster import Cluster, encode, free_ports, propose_retrying, wait_for

MiB = 1 << 20
Mount = Callable[[int], Path]


@pytest.fixture
def mount_tmpfs(tmp_path: Path) -> Iterator[Mount]:
    """mount(size_mib) -> a fresh tmpfs of that size, unmounted at the end."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted: list[Path] = []

    def mount(size_mib: int) -> Path:
        point = tmp_path / f"fs{len(mounted)}"
        point.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_mib}m", "tmpfs", str(point)],
            capture_output=True,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=True)


def remount(point: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(point)], check=True)


def fill(point: Path, leave: int) -> Path:
    """Fill the file system at `point` until `leave` bytes are free."""
    stat = os.statvfs(point)
    balloon = point / "balloon"
    with open(balloon, "wb") as f:
        f.write(bytes(stat.f_bavail * stat.f_frsize - leave))
    return balloon


def config(node_host_dir: Path, **settings: object) -> NodeHostConfig:
    address = f"127.0.0.1:{free_ports(1)[0]}"
    return NodeHostConfig(node_host_dir=str(node_host_dir), raft_address=address, **settings)  # type: ignore[arg-type]


def test_a_read_only_data_directory_is_named_at_start(mount_tmpfs: Mount, tmp_path: Path) -> None:
    fs = mount_tmpfs(32)
    used = fs / "used"
    first = config(used)
    NodeHost(first).close()
    remount(fs, "ro")
    with pytest.raises(InvalidConfig, match=rf"node_host_dir '{used}': Read-only file system"):
        NodeHost(NodeHostConfig(node_host_dir=str(used), raft_address=first.raft_address))
    fresh = fs / "fresh"
    with pytest.raises(InvalidConfig, match=rf"node_host_dir '{fresh}': Read-only file system"):
        NodeHost(config(fresh))
    wal = fs / "wal"
    with pytest.raises(InvalidConfig, match=rf"wal_dir '{wal}': Read-only file system"):
        NodeHost(config(tmp_path / "nh", wal_dir=str(wal)))
    remount(fs, "rw")
    NodeHost(NodeHostConfig(node_host_dir=str(used), raft_address=first.raft_address)).close()


def test_a_full_data_directory_is_named_at_start(mount_tmpfs: Mount, tmp_path: Path) -> None:
    fs = mount_tmpfs(48)
    used = fs / "used"
    first = config(used)
    NodeHost(first).close()
    balloon = fill(fs, leave=2 * MiB)
    with pytest.raises(InvalidConfig, match=rf"node_host_dir '{used}': No space left on device"):
        NodeHost(NodeHostConfig(node_host_dir=str(used), raft_address=first.raft_address))
    with pytest.raises(InvalidConfig, match=rf"wal_dir '{fs / 'wal'}': No space left on device"):
        NodeHost(config(tmp_path / "nh", wal_dir=str(fs / "wal")))
    balloon.unlink()
    NodeHost(NodeHostConfig(node_host_dir=str(used), raft_address=first.raft_address)).close()


VALUE = "v" * 100_000  # 20 of them make a snapshot of 2 MB


@pytest.fixture
def full_snapshot_disk(mount_tmpfs: Mount, tmp_path: Path) -> Iterator[tuple[Cluster, Path]]:
    """A one-replica shard whose snapshots go to a tmpfs (node_host_dir) with 1 MiB left,
    while its log store is on another disk (wal_dir), so only snapshots find it full.
    Yields the cluster and the balloon file to delete to make room."""
    fs = mount_tmpfs(40)
    cluster = Cluster(fs, size=1, wal_dir=str(tmp_path / "wal"), enable_metrics=True)
    try:
        cluster.start_shard(1, snapshot_entries=20, compaction_overhead=5)
        cluster.leader(1)
        balloon = fill(fs, leave=1 * MiB)
        yield cluster, balloon
    finally:
        cluster.close()


def snapshots_counted(host: NodeHost, event: str) -> float:
    for line in host.write_health_metrics().decode().splitlines():
        if line.startswith(f'nodehost_snapshots_total{{event="{event}"}}'):
            return float(line.split()[-1])
    return 0.0


def test_a_snapshot_on_a_full_disk_is_retried_and_the_replica_goes_on(
    full_snapshot_disk: tuple[Cluster, Path], caplog: pytest.LogCaptureFixture
) -> None:
    cluster, balloon = full_snapshot_disk
    host = cluster.host(1)
    snapshot_dir = host._env.snapshot_dir(1, 1)
    with caplog.at_level(logging.WARNING, logger="nodehost"):
        for i in range(30):
            propose_retrying(host, 1, encode("put", f"k{i}", VALUE))
        wait_for(lambda: snapshots_counted(host, "save_failed") >= 1, what="a failed snapshot")
    assert f"not saved: No space left on device ({snapshot_dir}" in caplog.text
    assert "the replica goes on, the next snapshot is tried in" in caplog.text
    assert snapshots_counted(host, "created") == 0
    # The replica serves on: writes commit and apply, reads see them.
    propose_retrying(host, 1, encode("put", "after", 1))
    assert host.sync_read(1, "after", timeout=5) == 1
    assert host.get_node_host_info().shard_info_list[0].failed is None

    balloon.unlink()
    deadline = time.monotonic() + 30
    i = 0
    while snapshots_counted(host, "created") == 0:
        assert time.monotonic() < deadline, "no snapshot after the disk had room again"
        propose_retrying(host, 1, encode("put", f"more{i}", i))
        i += 1
        time.sleep(0.05)  # entries trickle in while the retry's back-off runs out
    assert host.sync_read(1, "k29", timeout=5) == VALUE


def test_a_requested_snapshot_on_a_full_disk_is_aborted(
    full_snapshot_disk: tuple[Cluster, Path],
) -> None:
    cluster, balloon = full_snapshot_disk
    host = cluster.host(1)
    # 1.5 MB of state: more than the room left, and fewer entries than the 20 after
    # which an automatic snapshot would be tried first.
    for i in range(15):
        propose_retrying(host, 1, encode("put", f"k{i}", VALUE))
    outcome = host.request_snapshot(1, None, timeout=10).wait()
    assert outcome.code is ResultCode.ABORTED
    with pytest.raises(Aborted, match="No space left on device") as raised:
        host.sync_request_snapshot(1, None, timeout=10)
    assert str(host._env.snapshot_dir(1, 1)) in str(raised.value)
    assert raised.value.temporary
    propose_retrying(host, 1, encode("put", "after", 1))
    balloon.unlink()
    assert host.sync_request_snapshot(1, None, timeout=10) > 0
