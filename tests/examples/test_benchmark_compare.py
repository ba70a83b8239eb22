"""`example-benchmark --compare-etcd / --compare-dqlite` as a user runs it, tiny.

The etcd comparison runs wherever Debian's etcd-server is installed (CI installs it);
the dqlite one needs Debian's go-dqlite, which CI does not install, so it is skipped
there with that reason. Figures are for people and never asserted beyond sanity; what
is asserted is the shape of the report, that every process it started is gone by PID,
and that a missing peer is a clear error.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from examples.benchmark.compare import etcd_cluster, etcd_go, etcd_wire
from examples.benchmark.compare.dqlite import _read_results
from examples.benchmark.compare.etcd_load import LoadConfig
from examples.benchmark.compare.run import text
from nodehost.bench import Histogram, Workers

REPO = Path(__file__).resolve().parents[2]
TINY = ["-d", "1", "-w", "0.3", "--rounds", "1", "-s", "3", "--outstanding", "12"]


def run_benchmark(
    *args: str, timeout: float = 400, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "examples.benchmark.main", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def every_process(result: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for sides in result["scenarios"].values():
        for figure in sides.values():
            for run in figure["runs"]:
                out += run["processes"]
    for labels in result["http"].values():
        for figure in labels.values():
            for run in figure["runs"]:
                out += run["processes"]
    return out


def test_the_etcd_wire_messages_round_trip_and_reject_garbage() -> None:
    request = etcd_wire.put_request(b"k" * 200, b"v" * 16)
    fields = etcd_wire.fields(request)
    assert fields == {1: b"k" * 200, 2: b"v" * 16}
    assert etcd_wire.fields(etcd_wire.range_request(b"key")) == {1: b"key"}
    header = etcd_wire.varint(2 << 3) + etcd_wire.varint(2**63 + 5)
    status = (
        etcd_wire.varint(1 << 3 | 2)
        + etcd_wire.varint(len(header))
        + header
        + etcd_wire.varint(4 << 3)
        + etcd_wire.varint(77)
    )
    assert etcd_wire.status_leader(status) == (2**63 + 5, 77)
    for garbage in (b"\x0a\x05ab", b"\x80", b"\x0b", b"\x08" + b"\xff" * 11):
        with pytest.raises(ValueError):
            etcd_wire.status_leader(garbage)
    with pytest.raises(ValueError):
        etcd_wire.varint(-1)
    with pytest.raises(ValueError, match="mode must be put or range"):
        LoadConfig(endpoints=["127.0.0.1:1"], mode="delete", outstanding=1, warmup=0, duration=1)


def test_dqlite_benchmark_results_are_read_as_the_tool_writes_them(tmp_path: Path) -> None:
    results = tmp_path / "0-exec-1"
    results.write_text(
        "n 3\nn_err 1\navg [ms] 2.0\nmax [ms] 3.0\nmin [ms] 1.0\n"
        "measurements [timestamp in ns] [ms]\n1 1.000000\n2 2.000000\n3 3.000000\n\nerrors\n"
    )
    figures = _read_results([results], 1.5, {})
    assert (figures.writes, figures.errors, figures.histogram.total) == (3, 1, 3)
    assert 1.9 <= figures.histogram.percentile_ms(0.5) <= 2.03


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd is not installed (etcd-server)")
def test_compare_etcd_prints_both_systems_and_stops_every_process() -> None:
    done = run_benchmark("--compare-etcd", "--json", "--etcd-load", "python", *TINY)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert set(result["scenarios"]) == {"etcd writes", "etcd sequential", "etcd reads"}
    for sides in result["scenarios"].values():
        for side in ("nodehost", "peer"):
            figure = sides[side]
            assert figure["rate"] > 0 and 0 < figure["p50_ms"] <= figure["p99_ms"]
    roles = {p["role"] for p in every_process(result)}
    assert {"nodehost", "etcd", "etcd leader", "load (Python)"} <= roles
    for process in every_process(result):
        assert process["peak_rss_mib"] > 1
        assert not psutil.pid_exists(process["pid"]), process
    assert result["ratios"]["etcd writes rate"] > 0
    assert result["ratios"]["etcd sequential p50"] > 0
    assert "Python grpc.aio" in result["load_generator"]
    # The text report is the same result printed (one run serves both).
    printed = text(result)
    for line in ("writes at 12 outstanding", "one writer, one at a time", "linearizable reads"):
        assert line in printed
    assert "etcd leader" in printed and "MiB" in printed
    assert "ceiling  etcd 3.4, 3 members, 1 put outstanding" in printed


@pytest.mark.integration
@pytest.mark.skipif(
    not all(shutil.which(b) for b in ("dqlite-demo", "dqlite-benchmark", "dqlite")),
    reason="go-dqlite is not installed (CI does not install it; apt-get install go-dqlite)",
)
def test_compare_dqlite_prints_both_systems_and_stops_every_process() -> None:
    done = run_benchmark("--compare-dqlite", "--json", *TINY)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert set(result["scenarios"]) == {"dqlite writer"}
    assert "sequential HTTP GET via follower" in text(result)
    labels = {f"{m} via {w}" for m in ("PUT", "GET") for w in ("leader", "follower")}
    assert set(result["http"]["nodehost"]) == labels == set(result["http"]["dqlite"])
    for figure in result["http"]["dqlite"].values():
        assert 0 < figure["p50_ms"] <= figure["p99_ms"]
    for process in every_process(result):
        assert not psutil.pid_exists(process["pid"]), process
    roles = {p["role"] for p in every_process(result)}
    assert {"kvstore", "dqlite-demo leader", "dqlite-benchmark driver"} <= roles


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd is not installed (etcd-server)")
def test_the_go_load_generator_speaks_the_python_ones_contract(tmp_path: Path) -> None:
    """etcd's own Go client as the generator (built once, offline, and cached) where Go
    and Debian's golang-etcd-server-dev are installed; a clear reason where not."""
    binary, why = etcd_go.go_loader()
    if binary is None:
        assert why
        pytest.skip(f"no Go load generator here: {why}")
    with Workers(tmp_path) as workers:
        cluster = etcd_cluster.EtcdCluster(workers, tmp_path)
        cluster.wait_ready()
        for mode in ("put", "range"):
            config = LoadConfig(
                endpoints=cluster.endpoints, mode=mode, outstanding=4, warmup=0.2, duration=0.5
            )
            done = subprocess.run(
                [binary, json.dumps(config.__dict__)], capture_output=True, text=True, timeout=60
            )
            assert done.returncode == 0, done.stderr
            report = json.loads(done.stdout.strip().splitlines()[-1])
            histogram = Histogram.from_json(report["histogram"])
            assert report["count"] == histogram.total > 0 and report["errors"] == {}
            assert 0 < histogram.percentile_ms(0.5) < 1000 and report["peak_rss_mib"] > 1
        bad = subprocess.run([binary, '{"mode": "delete"}'], capture_output=True, text=True)
        assert bad.returncode == 2 and "bad config" in bad.stderr


def test_a_missing_peer_is_a_clear_error(tmp_path: Path) -> None:
    env = {"PATH": str(tmp_path), "HOME": str(tmp_path)}
    for flag, what in (("--compare-etcd", "etcd-server"), ("--compare-dqlite", "go-dqlite")):
        done = run_benchmark(flag, *TINY, env=env, timeout=60)
        assert done.returncode == 2
        assert what in done.stderr and "installed" in done.stderr
        assert done.stdout == ""
