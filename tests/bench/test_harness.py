"""The shared benchmark harness (nodehost.bench) on real processes and sockets.

Each worker a test starts is stopped by the harness, and the test checks by PID that
it is gone. Nothing waits a fixed time for an event: a child says when it is ready.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from nodehost.bench import (
    CpuWindow,
    Histogram,
    Workers,
    free_port_pairs,
    free_ports,
    own_cpu_seconds,
    own_peak_rss_mib,
    peak_rss_mib,
    rss_mib,
    stop_children,
)
from nodehost.bench.ceilings import CEILINGS, beside, ceiling
from nodehost.bench.processes import WorkerFailed
from nodehost.bench.report import latency_ratio, rate_ratio, ratio_text, table

ROOT = Path(__file__).resolve().parents[2]
READY = "ready"


def _wait_line(stream: object, deadline: float = 30.0) -> str:
    """The child's first stdout line; bounded by the test's timeout and `deadline`."""
    assert hasattr(stream, "readline")
    started = time.monotonic()
    line: str = stream.readline().decode().strip()
    assert time.monotonic() - started < deadline
    return line


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(8)
    assert len(set(ports)) == 8
    for port in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
    with pytest.raises(ValueError):
        free_ports(-1)


def test_free_port_pairs_leave_both_ports_of_each_pair_bindable() -> None:
    ports = free_port_pairs(3, 1000)
    assert len(set(ports)) == 3
    for port in ports:
        for each in (port, port + 1000):
            with socket.socket() as s:
                s.bind(("127.0.0.1", each))
    with pytest.raises(ValueError):
        free_port_pairs(2, 0)


def test_workers_stop_politely_then_by_signal_and_are_gone(tmp_path: Path) -> None:
    polite = "import sys\nfor line in sys.stdin:\n    if line.strip() == 'exit': sys.exit(0)\n"
    stubborn = (
        "import signal, sys, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\nwhile True: time.sleep(1)\n"
    )
    with Workers(tmp_path, stdin=True) as workers:
        a = workers.start("polite", [sys.executable, "-c", polite])
        b = workers.start("stubborn", [sys.executable, "-c", stubborn], stdout_pipe=True)
        assert _wait_line(b.stdout) == READY  # SIGTERM is ignored from here on

        def ask(child: object) -> None:
            stdin = getattr(child, "stdin", None)
            assert stdin is not None
            stdin.write(b"exit\n")
            stdin.flush()

        started = time.monotonic()
        workers.stop(polite=ask, grace=5.0)
        assert a.returncode == 0  # it left on the polite request
        assert b.returncode == -9  # SIGTERM ignored, SIGKILL ended it
        assert time.monotonic() - started < 40
    for pid in workers.pids:
        assert not psutil.pid_exists(pid)


def test_a_worker_that_exits_is_reported_with_its_log(tmp_path: Path) -> None:
    with Workers(tmp_path) as workers:
        child = workers.start(
            "failing", [sys.executable, "-c", "import sys; print('bad config x'); sys.exit(3)"]
        )
        child.wait(timeout=30)
        with pytest.raises(
            WorkerFailed, match=r"failing \(pid \d+\) failed: it exited with code 3"
        ):
            workers.check_alive()
        try:
            workers.check_alive()
        except WorkerFailed as exc:
            assert "bad config x" in str(exc)


def _sleeper(conn: object) -> None:
    conn.send(READY)
    time.sleep(600)


def test_stop_children_ends_multiprocessing_workers_by_pid() -> None:
    ctx = mp.get_context("spawn")
    ours, theirs = ctx.Pipe()
    child = ctx.Process(target=_sleeper, args=(theirs,))
    child.start()
    assert ours.poll(60) and ours.recv() == READY
    stop_children([child], grace=0.0, bound=10.0)
    assert child.exitcode == -15
    assert child.pid is not None and not psutil.pid_exists(child.pid)


SPIN = """
import time
start = time.process_time()
while time.process_time() - start < 0.3:
    pass
blob = bytearray(64 * 2**20)
for i in range(0, len(blob), 4096):
    blob[i] = 1
del blob
print("ready", flush=True)
time.sleep(600)
"""


def test_cpu_and_peak_memory_of_another_process(tmp_path: Path) -> None:
    with Workers(tmp_path) as workers:
        child = workers.start("spin", [sys.executable, "-c", SPIN], stdout_pipe=True)
        window = CpuWindow([child.pid])
        started = time.monotonic()
        assert _wait_line(child.stdout, 120) == READY
        wall = time.monotonic() - started
        percent = window.stop()[child.pid]
        # The child burned at least 0.3 s of CPU inside the window.
        assert percent * wall / 100.0 >= 0.29
        assert peak_rss_mib(child.pid) >= 64  # the freed 64 MiB stay in the high-water mark
        assert rss_mib(child.pid) > 0
    assert math.isnan(rss_mib(child.pid)) and math.isnan(CpuWindow([child.pid]).stop()[child.pid])
    assert own_peak_rss_mib() > 10 and own_cpu_seconds() > 0


def test_histogram_percentiles_stay_within_a_bucket() -> None:
    h = Histogram()
    samples = [i / 1e5 for i in range(1, 10_001)]  # 10 us .. 100 ms
    for s in samples:
        h.record(s)
    for fraction in (0.5, 0.99, 0.999):
        true_ms = samples[math.ceil(fraction * len(samples)) - 1] * 1000
        got = h.percentile_ms(fraction)
        assert true_ms <= got <= true_ms * 1.011
    merged = Histogram.from_json(h.to_json())
    merged.merge(h)
    assert merged.total == 2 * h.total and merged.percentile_ms(0.5) == h.percentile_ms(0.5)
    assert Histogram().percentile_ms(0.5) == 0.0


def test_every_ceiling_is_the_figure_docs_limits_gives() -> None:
    limits = (ROOT / "docs" / "limits.md").read_text()
    for item in CEILINGS:
        for part in item.figure.split("; "):
            assert part in limits, f"{item.key}: {part!r} is not in docs/limits.md"
    assert beside("fsync")[0].endswith(ceiling("fsync").figure)
    with pytest.raises(KeyError, match="no ceiling 'nope'"):
        ceiling("nope")


def test_ratios_say_ahead_above_one_and_never_invent_a_figure() -> None:
    assert rate_ratio(300.0, 100.0) == 3.0
    assert latency_ratio(1.0, 2.0) == 2.0  # half their latency: ahead by 2x
    assert rate_ratio(1.0, 0.0) is None and latency_ratio(None, 1.0) is None
    assert rate_ratio(float("nan"), 1.0) is None
    assert ratio_text(None) == "-" and ratio_text(1.234) == "1.23x"
    lines = table(["what", "ours"], [["writes/s", "1,000"], ["p50", "2 ms"]])
    assert lines[0].startswith("what") and lines[1].endswith("1,000")


def test_no_benchmark_edits_sys_path_or_imports_from_tests() -> None:
    """Outside tests/, nothing reaches into the test suite or edits the import path."""
    listed = subprocess.run(
        ["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    bad = re.compile(r"^\s*(?:from tests[.\s]|import tests\b)|sys\.path\.(?:insert|append)", re.M)
    offenders = [
        name
        for name in listed
        if not name.startswith("tests/") and bad.search((ROOT / name).read_text())
    ]
    assert offenders == []
    scripts = [n for n in listed if n.startswith("scripts/bench_")]
    assert scripts, "the benchmark scripts moved?"
    for name in scripts:
        assert "nodehost.bench" in (ROOT / name).read_text(), f"{name} does not use the harness"
