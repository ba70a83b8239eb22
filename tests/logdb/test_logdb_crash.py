"""SIGKILL a process writing synced batches across 64 shards, at random moments.

After each kill the store is reopened and must hold exactly the state after some
batch B: B is at least the last batch the child reported (its `save` returned, so
it was promised durable), at most one more (the batch in flight), and every shard
agrees on B (no batch half-present). The next child resumes after B.
"""

from __future__ import annotations

import os
import random
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from logdb_support import CrashModel, state_batch

from logdb import RocksLogDB

SHARDS = 64
CHILD = Path(__file__).with_name("logdb_child.py")


def run_child_until_killed(path: Path, first: int, rng: random.Random) -> tuple[int, bool]:
    """Start a writer, SIGKILL it at a random moment; (last batch reported, was ready)."""
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(path), str(first), str(SHARDS)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None
    lines: list[bytes] = []
    # One kill in five lands while the child opens the store (recovery, and the flush
    # that follows it); the rest while it writes.
    start = time.monotonic()
    kill_at = start + rng.uniform(0.0, 0.3) if rng.random() < 0.2 else None
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(child.stdout, selectors.EVENT_READ)
            while kill_at is None or time.monotonic() < kill_at:
                assert time.monotonic() < start + 30.0, "writer did not start"
                wait = 0.05 if kill_at is None else kill_at - time.monotonic()
                if not sel.select(max(0.0, wait)):
                    continue
                line = child.stdout.readline()
                if not line:
                    break  # it exited on its own: the return code check below says so
                lines.append(line)
                if kill_at is None and line.strip() == b"ready":
                    kill_at = time.monotonic() + rng.uniform(0.0, 0.4)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    lines += child.stdout.read().splitlines()
    child.stdout.close()
    errors = child.stderr.read() if child.stderr is not None else b""
    if child.stderr is not None:
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL, f"writer failed: {errors.decode()[-2000:]}"
    reported = [int(x) for x in lines if x.strip() and x.strip() != b"ready"]
    assert reported == list(range(first, first + len(reported)))
    ready = any(x.strip() == b"ready" for x in lines)
    return (reported[-1] if reported else first - 1), ready


def kill_loop(path: Path, cycles: int, seed: int) -> None:
    print(f"seed {seed}")  # shown when the test fails
    rng = random.Random(seed)
    model = CrashModel()
    in_flight_survived = 0
    for _ in range(cycles):
        reported, _ = run_child_until_killed(path, model.batches + 1, rng)
        with RocksLogDB(str(path)) as db:
            held = state_batch(db)
            assert reported <= held <= reported + 1, (
                f"returned batches up to {reported}, the store holds {held}"
            )
            model.advance_to(held)
            model.check(db, SHARDS)
        in_flight_survived += held == reported + 1
    print(
        f"{cycles} kills, {model.batches} batches of {SHARDS} shards; the batch in "
        f"flight was found whole {in_flight_survived} times, absent otherwise"
    )
    assert model.batches > 0


def test_sigkill_while_writing_loses_no_returned_batch(tmp_path: Path) -> None:
    kill_loop(tmp_path / "store", cycles=20, seed=int.from_bytes(os.urandom(4), "big"))


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_sigkill_hundreds_of_times(tmp_path: Path) -> None:
    kill_loop(tmp_path / "store", cycles=300, seed=int.from_bytes(os.urandom(4), "big"))
