"""example-benchmark run for real with tiny settings: its JSON is sane, its workers are
gone by PID afterwards (also after Ctrl-C), and bad arguments exit 2 with a clear line."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from examples.benchmark.settings import parser
from examples.benchmark.worker import placement
from nodehost.bench.histogram import Histogram

REPO = Path(__file__).resolve().parents[2]
TINY = ["-n", "3", "-s", "4", "-c", "4", "-d", "1", "-w", "0.3", "--probe-seconds", "0.2"]


def run_benchmark(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "examples.benchmark.main", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_json(tmp_path: Path, *args: str) -> dict[str, Any]:
    done = run_benchmark(*TINY, "--json", "--dir", str(tmp_path / "data"), *args)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    for process in result["processes"]:
        assert not psutil.pid_exists(process["pid"]), f"worker {process['pid']} outlived the run"
    return result


def sane_latencies(lat: dict[str, float]) -> None:
    assert 0 < lat["p50"] <= lat["p99"] <= lat["p99.9"] <= lat["max"]


@pytest.mark.integration
def test_a_write_run_reports_its_figures(tmp_path: Path) -> None:
    r = run_json(tmp_path)
    assert r["proposals_per_second"] > 0
    assert r["reads_per_second"] == 0
    sane_latencies(r["proposal_latency_ms"])
    assert r["proposal_latency_ms"]["count"] > 0
    assert r["elections"] >= 0 and r["errors"] == {}
    assert len(r["processes"]) == 3
    assert sum(p["leaders_at_start"] for p in r["processes"]) == 4
    for p in r["processes"]:
        assert p["cpu_percent"] > 0 and p["peak_rss_mb"] > 10
        assert p["log_writes_per_second"] > 0 and p["messages_sent_per_second"] > 0
    assert r["disk"]["fsync"]["per_second"] > 0
    assert r["disk"]["rocksdict_sync_put"]["per_second"] > 0
    assert r["settings"]["fsync"] is True
    [target] = r["targets"]
    assert target["name"] == "applied proposals/s" and "shards" in target["settings_differ"]


@pytest.mark.integration
def test_a_read_run_on_the_concurrent_state_machine(tmp_path: Path) -> None:
    r = run_json(tmp_path, "--read-ratio", "1", "--sm", "concurrent")
    assert r["reads_per_second"] > 0 and r["proposals_per_second"] == 0
    sane_latencies(r["read_latency_ms"])
    assert [t["name"] for t in r["targets"]] == ["linearizable reads/s"]


@pytest.mark.integration
def test_sequential_mode_on_disk_without_fsync(tmp_path: Path) -> None:
    """Also `--profile DIR` (py-spy on each worker during the window): per process, CPU
    by thread (GIL held) and the top functions; where py-spy may not attach, the reason instead."""
    r = run_json(
        tmp_path,
        *("--sequential", "--sm", "ondisk", "--no-fsync", "--probe-seconds", "0"),
        *("--profile", str(tmp_path / "profile")),
    )
    profiles = r["profile"]
    if isinstance(profiles, str):
        assert "py-spy" in profiles
    else:
        assert [p["pid"] for p in profiles] == [p["pid"] for p in r["processes"]]
        for profile in profiles:
            assert profile["samples"] > 0 and "nodehost-engine" in profile["threads_gil_share"]
            assert profile["self"] and profile["inclusive"]
            assert (tmp_path / "profile" / f"{profile['pid']}.txt").is_file()
    assert r["settings"]["shards"] == 1 and r["settings"]["fsync"] is False
    assert r["proposals_per_second"] > 0
    sane_latencies(r["proposal_latency_ms"])
    # One client, beside the leader: only the leader's process completes proposals.
    busy = [p for p in r["processes"] if p["proposals_per_second"] > 0]
    assert len(busy) == 1 and busy[0]["leaders_at_start"] == 1
    assert [t["name"] for t in r["targets"]] == ["sequential p50", "sequential p99"]
    assert r["disk"] == {}


@pytest.mark.integration
def test_ctrl_c_stops_every_worker(tmp_path: Path) -> None:
    coordinator = subprocess.Popen(
        [sys.executable, "-m", "examples.benchmark.main", *TINY, "-d", "60", "--json"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        parent = psutil.Process(coordinator.pid)
        deadline = time.monotonic() + 30
        workers: list[psutil.Process] = []
        while len(workers) < 3 and time.monotonic() < deadline:
            workers = parent.children()
            time.sleep(0.1)
        assert len(workers) == 3, "the workers did not start"
        coordinator.send_signal(signal.SIGINT)
        _, stderr = coordinator.communicate(timeout=45)
    finally:
        if coordinator.poll() is None:
            os.kill(coordinator.pid, signal.SIGKILL)
            coordinator.wait(timeout=10)
    assert coordinator.returncode == 130
    assert "interrupted" in stderr
    assert not [w.pid for w in workers if psutil.pid_exists(w.pid)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--read-ratio", "2"], "--read-ratio"),
        (["--processes", "0"], "--processes"),
        (["--sm", "nope"], "--sm"),
        (["--payload", "x"], "--payload"),
        (["--duration", "-1"], "--duration"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_error(args: list[str], message: str) -> None:
    done = run_benchmark(*args, timeout=30)
    assert done.returncode == 2
    assert message in done.stderr and "error" in done.stderr
    assert done.stdout == ""


def test_a_non_empty_dir_is_refused(tmp_path: Path) -> None:
    (tmp_path / "keep").write_text("x")
    done = run_benchmark("--dir", str(tmp_path), timeout=30)
    assert done.returncode == 2 and "not empty" in done.stderr
    assert (tmp_path / "keep").exists()


def test_histogram_percentiles_are_within_a_bucket_of_the_samples() -> None:
    rng = random.Random(5)
    samples = [rng.lognormvariate(-7, 1.5) for _ in range(50_000)]  # seconds, ~1 ms median
    halves = Histogram(), Histogram()
    for i, s in enumerate(samples):
        halves[i % 2].record(s)
    merged = Histogram()
    for half in halves:
        merged.merge(Histogram.from_json(json.loads(json.dumps(half.to_json()))))
    ordered = sorted(samples)
    for fraction in (0.5, 0.99, 0.999):
        exact_ms = ordered[math.ceil(fraction * len(ordered)) - 1] * 1000
        got = merged.percentile_ms(fraction)
        assert exact_ms <= got <= exact_ms * 1.012, (fraction, exact_ms, got)
    assert merged.total == len(samples)
    assert merged.percentile_ms(1.0) == pytest.approx(max(samples) * 1000)


def test_each_shard_has_three_replicas_on_distinct_processes() -> None:
    for processes in (3, 4, 7):
        hosted = [0] * processes
        for shard in range(1, 100):
            where = placement(shard, processes, 3)
            assert len(set(where)) == 3
            for p in where:
                hosted[p] += 1
        assert max(hosted) - min(hosted) <= 3


def test_docs_list_every_flag() -> None:
    text = (REPO / "docs" / "performance.md").read_text()
    for action in parser()._actions:
        long = [o for o in action.option_strings if o.startswith("--") and o != "--help"]
        for option in long:
            if option.startswith("--no-"):
                continue
            assert f"`{option}`" in text, option
