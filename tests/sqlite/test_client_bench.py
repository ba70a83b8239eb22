"""scripts/bench_client.py runs as its docstring shows and prints every figure."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def test_the_client_benchmark_prints_its_figures() -> None:
    done = subprocess.run(
        [sys.executable, "scripts/bench_client.py", "--seconds", "0.5", "--clients", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0] == "nodehost.sqlite.connect -> 3 nodehost members (fsync on)"
    figure = r"p50 +[\d.]+ ms  p99 +[\d.]+ ms +\d+ ops/s  0 failed"
    loads = [
        "sequential INSERT, 1 client",
        "INSERT, 2 clients",
        "point SELECT \\(strong\\), 1 client",
        "point SELECT \\(weak\\), 1 client",
    ]
    for line, load in zip(lines[1:5], loads, strict=True):
        assert re.fullmatch(rf"  {load} +{figure}", line), line
