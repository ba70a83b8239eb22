"""The remote client's speed: `nodehost.sqlite.connect` from this process (which hosts no
member) against three nodehost members on loopback (separate processes, fsync on), and,
with `--dqlite`, the same client against Debian's dqlite-demo (three processes): the same
client code on both sides, so the figures compare the servers and show the client's cost.

    uv run python scripts/bench_client.py                 # 5 s per load
    uv run python scripts/bench_client.py --seconds 10 --dqlite

Loads, each through one connection per client thread, autocommit (one write = one Raft
entry), every statement waiting for its answer:
1. sequential single-row INSERTs, one client: p50, p99, operations/s;
2. single-row INSERTs from `--clients` threads (default 8): operations/s;
3. point SELECTs at consistency strong (linearizable), one client: p50, p99;
4. the same at consistency weak (the leader's copy, no quorum round: what dqlite's
   server does for every read, whatever the client asks).
Shared machines give noisy figures: compare within one run.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from examples.benchmark.compare.dqlite import DqliteDemo
from examples.benchmark.sqlcluster import SqlCluster
from nodehost.bench import Workers
from nodehost.sqlite import client

RTT = 20  # ms, the members' tick (the wire tests' setting)


def measure(
    addresses: list[str],
    database: str,
    clients: int,
    seconds: float,
    work: Callable[..., None],
    consistency: str = "strong",
) -> tuple[list[float], float, int]:
    """Latencies (ms) of every operation that succeeded, those per second, and how many
    failed (dqlite fails concurrent writers as busy), from `clients` threads each with
    its own connection."""
    latencies: list[float] = []
    failed = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    errors: list[BaseException] = []

    def run(number: int) -> None:
        conn = client.connect(
            addresses,
            database=database,
            isolation_level=None,
            timeout=10,
            consistency=consistency,
        )
        mine: list[float] = []
        try:
            sequence = 0
            while time.monotonic() < stop:
                sequence += 1
                started = time.perf_counter()
                try:
                    work(conn, number, sequence)
                except client.Error:
                    with lock:
                        failed[0] += 1
                    continue
                mine.append((time.perf_counter() - started) * 1000)
        except BaseException as error:  # reported below, after the others stop
            errors.append(error)
        finally:
            conn.close()
            with lock:
                latencies.extend(mine)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(clients)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 60)
    if errors:
        raise errors[0]
    return latencies, len(latencies) / (time.monotonic() - began), failed[0]


def inserter(load: str) -> Callable[[client.Connection, int, int], None]:
    def insert(conn: client.Connection, number: int, sequence: int) -> None:
        key = f"{load}-{number}-{sequence}"
        conn.execute("INSERT INTO kv (k, v) VALUES (?, ?)", (key, "x" * 16))

    return insert


def select(conn: client.Connection, number: int, sequence: int) -> None:
    key = f"sequential-0-{sequence % 100 + 1}"  # rows the first load wrote
    conn.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def run_loads(addresses: list[str], clients: int, seconds: float) -> list[str]:
    with client.connect(addresses, database="bench", isolation_level=None) as setup:
        setup.execute("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT)")
    loads = [
        ("sequential INSERT, 1 client", 1, inserter("sequential"), "strong"),
        (f"INSERT, {clients} clients", clients, inserter("concurrent"), "strong"),
        ("point SELECT (strong), 1 client", 1, select, "strong"),
        ("point SELECT (weak), 1 client", 1, select, "weak"),
    ]
    lines = []
    for name, threads, work, consistency in loads:
        latencies, rate, failed = measure(addresses, "bench", threads, seconds, work, consistency)
        median = statistics.median(latencies) if latencies else 0.0
        lines.append(
            f"  {name:32s} p50 {median:7.2f} ms  p99 {percentile(latencies, 0.99):7.2f} ms"
            f"  {rate:6.0f} ops/s  {failed} failed"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per load (5)")
    parser.add_argument("--clients", type=int, default=8, help="threads for load 2 (8)")
    parser.add_argument("--dqlite", action="store_true", help="also against dqlite-demo")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-client-") as directory:
        root = Path(directory)
        with SqlCluster(root / "nodehost", rtt=RTT) as members:
            print("nodehost.sqlite.connect -> 3 nodehost members (fsync on)", flush=True)
            for line in run_loads(members.addresses, args.clients, args.seconds):
                print(line, flush=True)
        if args.dqlite:
            if shutil.which("dqlite-demo") is None or shutil.which("dqlite") is None:
                print("dqlite-demo is not installed (apt-get install go-dqlite): skipped")
                return 0
            with Workers(root) as workers:
                demo = DqliteDemo(workers, root / "dqlite")
                demo.leader()  # every node a voter
                print("nodehost.sqlite.connect -> 3 dqlite-demo nodes (go-dqlite 1.11)")
                addresses = [node.database for node in demo.nodes]
                for line in run_loads(addresses, args.clients, args.seconds):
                    print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
