"""A full disk: `save` raises, nothing is acknowledged, and the store comes back.

After the failed save the store refuses every write (fail-stop: after a failed
write or sync the files' state is unknown). Once space is available again, reopening
it finds every acknowledged batch and no half batch, and it accepts writes.

Two ways to fill a disk: a small tmpfs (needs root to mount; skipped otherwise), and
RLIMIT_FSIZE in a child process (works unprivileged: writes past the limit get EFBIG).
The in-memory store's injected failure is checked against the same promises.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from logdb_support import CrashModel, Record, crash_batch, entries, state_batch

from logdb import MemoryLogDB, RocksLogDB, WriteError

CHILD = Path(__file__).with_name("logdb_child.py")
SHARDS = 16
MiB = 1 << 20


def reopen_and_check(path: Path, acked: int, snapshot_every: int = 50) -> None:
    with RocksLogDB(str(path)) as db:
        held = state_batch(db)
        assert acked <= held <= acked + 1, f"acknowledged {acked}, found {held}"
        model = CrashModel(snapshot_every=snapshot_every)
        model.advance_to(held)
        model.check(db, SHARDS)
        db.save(crash_batch(held + 1, SHARDS, snapshot_every))  # writable again
        model.advance_to(held + 1)
        model.check(db, SHARDS)


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "tmpfs"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount_point)],
        capture_output=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)


def test_disk_full_on_a_small_tmpfs(small_tmpfs: Path) -> None:
    path = small_tmpfs / "store"
    db = RocksLogDB(str(path), write_buffer_bytes=MiB)
    balloon = small_tmpfs / "balloon"
    free = os.statvfs(small_tmpfs).f_bavail * os.statvfs(small_tmpfs).f_frsize
    balloon.write_bytes(bytes(free - 3 * MiB))
    acked = 0
    deadline = time.monotonic() + 60
    # No snapshots: the log only grows, so the disk fills within a few hundred batches.
    with pytest.raises(WriteError, match="No space left"):
        while time.monotonic() < deadline:
            db.save(crash_batch(acked + 1, SHARDS, snapshot_every=0))
            acked += 1
    assert acked > 0
    with pytest.raises(WriteError, match="earlier write failed"):
        db.save(crash_batch(acked + 1, SHARDS, snapshot_every=0))
    db.close()
    balloon.unlink()
    reopen_and_check(path, acked, snapshot_every=0)


def test_file_size_limit_in_a_child(tmp_path: Path) -> None:
    path = tmp_path / "store"
    run = subprocess.run(
        [sys.executable, str(CHILD), str(path), "1", str(SHARDS), "--file-size-limit", "400000"],
        capture_output=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr.decode()[-2000:]
    lines = run.stdout.decode().split()
    assert lines[0] == "ready" and lines[-3:-1] == ["failed", lines[-2]]
    assert lines[-1] == "refused"
    acked = int(lines[-4]) if lines[-4].isdigit() else 0
    assert acked > 0 and int(lines[-2]) == acked + 1
    reopen_and_check(path, acked)


def test_memory_store_injected_failure_after_the_write_reached_the_file() -> None:
    db = MemoryLogDB()
    db.save([Record(1, 1, entries(1, 3, 1))])
    db.fail_next_write(written=True)
    with pytest.raises(WriteError):
        db.save([Record(1, 1, entries(4, 5, 1))])
    db.restart()  # the page cache kept it
    rs = db.read_state(1, 1)
    assert rs is not None and rs.last_index == 5
    db.save([Record(1, 1, entries(6, 6, 1))])  # this sync makes 4..5 durable too
    db.fail_next_write(written=True)
    with pytest.raises(WriteError):
        db.save([Record(1, 1, entries(7, 7, 1))])
    db.power_cut()  # the disk never had 7
    rs = db.read_state(1, 1)
    assert rs is not None and rs.last_index == 6


def test_memory_store_injected_failure() -> None:
    db = MemoryLogDB()
    db.save([Record(1, 1, entries(1, 3, 1))])
    db.fail_next_write()
    with pytest.raises(WriteError):
        db.save([Record(1, 1, entries(4, 5, 1))])
    with pytest.raises(WriteError):
        db.save([Record(1, 1, entries(4, 5, 1))])
    db.restart()
    rs = db.read_state(1, 1)
    assert rs is not None and rs.last_index == 3
    db.save([Record(1, 1, entries(4, 5, 1))])
    rs = db.read_state(1, 1)
    assert rs is not None and rs.last_index == 5
