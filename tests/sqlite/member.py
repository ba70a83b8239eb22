"""A cluster member in its own process, driven through stdin/stdout JSON lines.

    python -m tests.sqlite.member --dir D --address A --cluster A,B,C [--rtt MS]

Prints {"event": "ready", "id": N} once its App is ready, then answers one line per
command read from stdin:
- {"cmd": "leader"} -> {"leader": id or 0}
- {"cmd": "writers", "count": K, "database": NAME} -> starts K threads that insert rows
  with unique keys and print {"ack": key, "t": unix time} for every acknowledged insert
  (a failed insert is retried with a new key after a short pause)
- {"cmd": "stop"} -> stops the writers, {"stopped": true}
- {"cmd": "report"} -> {"applied": index, "hash": state hash}
- {"cmd": "dump", "database": NAME, "path": P} -> writes every key (strong read) to P
- {"cmd": "bench", ...} -> runs a load from `clients` threads (see bench_sql) and prints
  its figures
Used by the failover tests (which SIGKILL it) and by scripts/bench_sql.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any

from nodehost.sqlite import App, Error

_print_lock = threading.Lock()


def emit(message: dict[str, Any]) -> None:
    with _print_lock:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()


class Writers:
    def __init__(self, app: App) -> None:
        self.app = app
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self, count: int, database: str) -> None:
        connection = self.app.open(database, isolation_level=None, timeout=5.0)
        connection.execute(
            "CREATE TABLE IF NOT EXISTS acked (key TEXT PRIMARY KEY, at TEXT DEFAULT CURRENT_TIMESTAMP)"
        )
        for number in range(count):
            thread = threading.Thread(target=self._run, args=(number, database), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _run(self, number: int, database: str) -> None:
        connection = self.app.open(database, isolation_level=None, timeout=3.0)
        sequence = 0
        while not self.stop.is_set():
            sequence += 1
            key = f"{self.app.id}-{number}-{sequence}-{time.monotonic_ns()}"
            try:
                connection.execute("INSERT INTO acked (key) VALUES (?)", (key,))
            except Error:
                time.sleep(0.05)
                continue
            emit({"ack": key, "t": time.time()})

    def halt(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(10)


def bench(app: App, command: dict[str, Any]) -> dict[str, Any]:
    """Single-row INSERT transactions from `clients` threads for `seconds`."""
    clients = int(command.get("clients", 1))
    seconds = float(command.get("seconds", 5))
    database = str(command.get("database", "bench"))
    mode = str(command.get("mode", "insert"))
    setup = app.open(database, isolation_level=None)
    setup.execute("CREATE TABLE IF NOT EXISTS model (key TEXT PRIMARY KEY, value TEXT)")
    if mode == "select":
        setup.executemany(
            "INSERT OR REPLACE INTO model VALUES (?, ?)", [(f"k{i}", "v" * 16) for i in range(1000)]
        )
    latencies: list[list[float]] = [[] for _ in range(clients)]
    failures = [0] * clients
    stop_at = time.monotonic() + seconds
    start = threading.Barrier(clients + 1)

    def client(number: int) -> None:
        connection = app.open(database, isolation_level=None, timeout=10.0)
        mine = latencies[number]
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
            mine.append(time.perf_counter() - began)

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.monotonic()
    for thread in threads:
        thread.join(seconds + 30)
    elapsed = time.monotonic() - began
    every = sorted(x for mine in latencies for x in mine)
    count = len(every)

    def quantile(q: float) -> float:
        return every[min(int(q * count), count - 1)] * 1000 if count else float("nan")

    return {
        "mode": mode,
        "clients": clients,
        "operations": count,
        "per_second": count / elapsed,
        "p50_ms": quantile(0.5),
        "p99_ms": quantile(0.99),
        "failures": sum(failures),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--address", required=True)
    parser.add_argument("--cluster", required=True)
    parser.add_argument("--rtt", type=int, default=20)
    parser.add_argument("--unreachable-timeout", type=float, default=2.0)
    args = parser.parse_args()
    app = App(
        args.dir,
        address=args.address,
        cluster=args.cluster.split(","),
        rtt_millisecond=args.rtt,
        unreachable_timeout=args.unreachable_timeout,
    )
    app.ready(60)
    emit({"event": "ready", "id": app.id})
    writers = Writers(app)
    for line in sys.stdin:
        command = json.loads(line)
        name = command.get("cmd")
        try:
            if name == "leader":
                leader = app.leader()
                emit({"leader": leader.id if leader else 0})
            elif name == "writers":
                writers.start(int(command["count"]), str(command["database"]))
                emit({"writers": int(command["count"])})
            elif name == "stop":
                writers.halt()
                emit({"stopped": True})
            elif name == "report":
                emit({"applied": app.applied_index(), "hash": app.state_hash()})
            elif name == "dump":
                connection = app.open(str(command["database"]))
                keys = [row[0] for row in connection.execute("SELECT key FROM acked").fetchall()]
                with open(command["path"], "w") as out:
                    out.write("\n".join(str(k) for k in keys))
                emit({"dumped": len(keys)})
            elif name == "bench":
                emit({"bench": bench(app, command)})
            elif name == "exit":
                break
            else:
                emit({"error": f"unknown command {name!r}"})
        except Error as exc:
            emit({"error": f"{type(exc).__name__}: {exc}"})
    writers.halt()
    app.close()


if __name__ == "__main__":
    main()
