"""dqlite beside the kvstore example: Debian's `go-dqlite` programs, three nodes each.

- `dqlite-demo` is go-dqlite's key-value HTTP service (PUT /key with the value as the
  body, GET /key), the same task as `example-kvstore`: one client, one request at a
  time, through the leader and through a follower (which forwards to the leader).
  The leader's address comes from go-dqlite's `dqlite` shell (`.leader`).
- `dqlite-benchmark --workload kvwrite` with one worker on the leader is the one-writer
  figure (its own results file: one latency per write).
Rules: ports picked free, data in the run's directory, every process stopped by PID,
every wait bounded; a node that exits fails the comparison with its log.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from nodehost.bench import Histogram, Watch, Workers, free_ports
from nodehost.bench.processes import WorkerFailed

READY_TIMEOUT = 60.0


def dqlite_installed() -> bool:
    return all(shutil.which(b) for b in ("dqlite-demo", "dqlite-benchmark", "dqlite"))


@dataclass
class DemoNode:
    api: str
    database: str
    pid: int


class DqliteDemo:
    """Three dqlite-demo nodes; node 1 bootstraps, 2 and 3 join it."""

    def __init__(self, workers: Workers, directory: Path, size: int = 3) -> None:
        ports = free_ports(2 * size)
        self.nodes: list[DemoNode] = []
        self.workers = workers
        for i in range(size):
            api, database = f"127.0.0.1:{ports[2 * i]}", f"127.0.0.1:{ports[2 * i + 1]}"
            data = directory / f"dqlite-demo{i + 1}"
            data.mkdir(parents=True)
            command = ["dqlite-demo", "--api", api, "--db", database, "--dir", str(data)]
            if i:
                command += ["--join", self.nodes[0].database]
            child = workers.start(f"dqlite-demo{i + 1}", command)
            self.nodes.append(DemoNode(api, database, child.pid))

    @property
    def pids(self) -> list[int]:
        return [n.pid for n in self.nodes]

    def leader(self, timeout: float = READY_TIMEOUT) -> DemoNode:
        """The node the `dqlite` shell names as leader, once all are voters."""
        deadline = time.monotonic() + timeout
        seen = ""
        while time.monotonic() < deadline:
            self.workers.check_alive()
            servers = ",".join(n.database for n in self.nodes)
            try:
                cluster = _shell(servers, ".cluster")
                seen = _shell(servers, ".leader").strip()
            except (subprocess.SubprocessError, OSError) as exc:
                seen = str(exc)
            else:
                voters = cluster.count("|voter")
                for node in self.nodes:
                    if node.database == seen and voters == len(self.nodes):
                        return node
            time.sleep(0.2)
        raise WorkerFailed(f"dqlite-demo: no leader with {len(self.nodes)} voters ({seen!r})")


def _shell(servers: str, command: str) -> str:
    done = subprocess.run(
        ["dqlite", "-s", servers, "demo", command],
        capture_output=True,
        text=True,
        timeout=10,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode:
        raise subprocess.SubprocessError(done.stderr.strip() or f"exit {done.returncode}")
    return done.stdout


async def sequential_http(
    url: str, method: str, body: bytes | None, warmup: float, seconds: float
) -> Histogram:
    """One client, one request at a time for `warmup` + `seconds`; the window's latencies.

    A request answered with a status >= 400 fails the run: an error is not a latency."""
    histogram = Histogram()
    async with aiohttp.ClientSession() as http:
        opens = time.perf_counter() + warmup
        closes = opens + seconds
        i = 0
        while (sent := time.perf_counter()) < closes:
            target = url.replace("{i}", str(i % 1000))
            async with http.request(method, target, data=body) as answer:
                await answer.read()
                if answer.status >= 400:
                    raise WorkerFailed(f"{method} {target}: HTTP {answer.status}")
            done = time.perf_counter()
            if done >= opens:
                histogram.record(done - sent)
            i += 1
    return histogram


def sequential(
    url: str, method: str, body: bytes | None, warmup: float, seconds: float
) -> Histogram:
    return asyncio.run(sequential_http(url, method, body, warmup, seconds))


@dataclass
class BenchmarkFigures:
    writes: int
    errors: int
    seconds: float
    histogram: Histogram
    processes: dict[int, tuple[float, float]]  # pid: (CPU % of a core, peak RSS MiB)


def dqlite_benchmark(
    workers: Workers,
    directory: Path,
    seconds: int,
    payload: int,
    size: int = 3,
    clients: int = 1,
) -> BenchmarkFigures:
    """`dqlite-benchmark` kvwrite, `clients` workers on node 1 (the leader it elects
    first). `directory` must not hold an earlier run's nodes."""
    ports = free_ports(size)
    addresses = [f"127.0.0.1:{p}" for p in ports]
    children = []
    for i, address in enumerate(addresses):
        data = directory / f"dqlite-benchmark{i + 1}"
        data.mkdir(parents=True)
        command = ["dqlite-benchmark", "--db", address, "--dir", str(data)]
        if i == 0:
            command += [
                "--driver",
                "--cluster",
                ",".join(addresses),
                "--workload",
                "kvwrite",
                "--workers",
                str(clients),
                "--duration",
                str(seconds),
                "--value-size",
                str(payload),
                "--cluster-timeout",
                str(int(READY_TIMEOUT)),
            ]
        else:
            command += ["--join", addresses[0]]
        children.append(workers.start(f"dqlite-benchmark{i + 1}", command))
    driver = children[0]
    watch = Watch([c.pid for c in children])
    try:
        driver.wait(timeout=READY_TIMEOUT + seconds + 60)
    except subprocess.TimeoutExpired:
        raise WorkerFailed("dqlite-benchmark: the driver did not finish in time") from None
    if driver.returncode:
        raise WorkerFailed(workers.failure(workers.children.index(driver), "it failed"))
    processes = watch.stop()
    results = sorted((directory / "dqlite-benchmark1").glob("*/results/*"))
    if not results:
        raise WorkerFailed("dqlite-benchmark wrote no results file")
    return _read_results(results, float(seconds), processes)


_HEADER = re.compile(r"^(n|n_err) (\d+)$")


def _read_results(
    paths: list[Path], seconds: float, processes: dict[int, tuple[float, float]]
) -> BenchmarkFigures:
    histogram = Histogram()
    writes = errors = 0
    for path in paths:
        measuring = False
        for line in path.read_text().splitlines():
            header = _HEADER.match(line)
            if header:
                if header[1] == "n":
                    writes += int(header[2])
                else:
                    errors += int(header[2])
            elif line.startswith("measurements"):
                measuring = True
            elif measuring and line.strip():
                parts = line.split()
                if len(parts) != 2:
                    measuring = False  # the errors section follows
                    continue
                histogram.record(float(parts[1]) / 1000.0)
    return BenchmarkFigures(writes, errors, seconds, histogram, processes)
