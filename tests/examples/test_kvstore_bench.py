"""The README's "Measuring" command runs: a short run of each kind, read as a user reads
it (the figures themselves are for people, never asserted)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from kvstore_cluster import REPO

pytestmark = pytest.mark.integration


def test_the_bench_runs_and_prints_every_line() -> None:
    argv = ["--store", "disk", "--concurrency", "1,4", "--seconds", "0.3"]
    done = subprocess.run(
        [sys.executable, "-m", "examples.kvstore.bench", *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("kvstore bench: 3 nodes, STORE=disk")
    for kind in ("PUT", "GET", "GET stale", "bare HTTP"):
        for concurrency in (1, 4):
            assert any(
                line.split(" c=")[0].strip() == kind
                and f"c={concurrency} " in line
                and "ops/s" in line
                for line in lines
            ), (kind, concurrency, done.stdout)
    assert "etcd" in done.stdout and "PySyncObj" in done.stdout
