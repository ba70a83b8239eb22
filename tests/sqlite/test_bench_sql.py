"""scripts/bench_sql.py runs as the README shows (shortened: 1 s per load, 4 clients) and
prints every figure it promises; with Debian's dqlite-benchmark installed, beside dqlite's."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def test_bench_sql_prints_its_figures() -> None:
    command = [sys.executable, "scripts/bench_sql.py", "--seconds", "1", "--clients", "4", "--wire"]
    with_dqlite = shutil.which("dqlite-benchmark") is not None
    if with_dqlite:
        command.append("--dqlite")
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    for label in (
        "sequential INSERT, 1 client",
        "INSERT transactions, 4 clients",
        "linearizable point SELECT, 4 clients",
        "INSERT over the wire, 4 conns",
        "write + fdatasync",
        "goals",
    ):
        assert label in out, out
    dqlite_section = out.split("\ndqlite (")[1].split("\nraw ceilings")[0]
    assert "kvwrite, 1 worker" in dqlite_section
    # Measured when dqlite-benchmark is installed, the recorded figures otherwise.
    assert ("recorded" in dqlite_section) is not with_dqlite
