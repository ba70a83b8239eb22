"""One nodehost.sqlite member for the SQL benchmarks, in its own process, driven by
JSON lines on stdin/stdout.

    python -m examples.benchmark.sqlworker --dir D --address A --cluster A,B,C [--rtt MS]

Prints {"event": "ready", "id": N} once its App is ready, then answers one line per
command:
- {"cmd": "leader"} -> {"leader": id or 0}
- {"cmd": "bench", "clients": C, "seconds": S, "mode": "insert" | "select"} ->
  {"bench": figures}: single-row autocommit INSERTs (or linearizable point SELECTs)
  from C threads through `App.open`, as dqlite-benchmark's driver runs its workers
- {"cmd": "exit"} (or the end of stdin) -> the App closes, exit code 0

Rules: built on the public nodehost.sqlite API only; a failed statement counts as a
failure, never as throughput; stdout carries only the answers (logs go to stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any

from nodehost.bench import Histogram
from nodehost.sqlite import App, Error


def bench(app: App, command: dict[str, Any]) -> dict[str, Any]:
    """Single-row INSERT transactions (or point SELECTs) from `clients` threads."""
    clients = int(command.get("clients", 1))
    seconds = float(command.get("seconds", 5))
    database = str(command.get("database", "bench"))
    mode = str(command.get("mode", "insert"))
    if mode not in ("insert", "select"):
        raise ValueError(f"unknown bench mode {mode!r}")
    setup = app.open(database, isolation_level=None)
    setup.execute("CREATE TABLE IF NOT EXISTS model (key TEXT PRIMARY KEY, value TEXT)")
    if mode == "select":
        setup.executemany(
            "INSERT OR REPLACE INTO model VALUES (?, ?)", [(f"k{i}", "v" * 16) for i in range(1000)]
        )
    histograms = [Histogram() for _ in range(clients)]
    failures = [0] * clients
    stop_at = time.monotonic() + seconds
    start = threading.Barrier(clients + 1)

    def client(number: int) -> None:
        connection = app.open(database, isolation_level=None, timeout=10.0)
        mine = histograms[number]
        start.wait()
        sequence = 0
        while time.monotonic() < stop_at:
            sequence += 1
            began = time.perf_counter()
            try:
                if mode == "select":
                    connection.execute(
                        "SELECT value FROM model WHERE key = ?", (f"k{sequence % 1000}",)
                    ).fetchall()
                else:
                    connection.execute(
                        "INSERT INTO model (key, value) VALUES (?, ?)",
                        (f"{number}-{sequence}-{time.monotonic_ns()}", "0123456789abcdef"),
                    )
            except Error:
                failures[number] += 1
                continue
            mine.record(time.perf_counter() - began)

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.monotonic()
    for thread in threads:
        thread.join(seconds + 30)
    elapsed = time.monotonic() - began
    every = Histogram()
    for histogram in histograms:
        every.merge(histogram)
    count = every.total
    return {
        "mode": mode,
        "clients": clients,
        "operations": count,
        "per_second": count / elapsed,
        "p50_ms": every.percentile_ms(0.5) if count else float("nan"),
        "p99_ms": every.percentile_ms(0.99) if count else float("nan"),
        "failures": sum(failures),
    }


def _emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", required=True)
    parser.add_argument("--address", required=True)
    parser.add_argument("--cluster", required=True)
    parser.add_argument("--rtt", type=int, default=50)
    args = parser.parse_args(argv)
    app = App(
        args.dir,
        address=args.address,
        cluster=args.cluster.split(","),
        rtt_millisecond=args.rtt,
    )
    try:
        app.ready(60)
        _emit({"event": "ready", "id": app.id})
        for line in sys.stdin:
            command = json.loads(line)
            name = command.get("cmd")
            try:
                if name == "leader":
                    leader = app.leader()
                    _emit({"leader": leader.id if leader else 0})
                elif name == "bench":
                    _emit({"bench": bench(app, command)})
                elif name == "exit":
                    break
                else:
                    _emit({"error": f"unknown command {name!r}"})
            except (Error, ValueError) as exc:
                _emit({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        app.close()


if __name__ == "__main__":
    main()
