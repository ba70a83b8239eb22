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
Used by the failover tests (which SIGKILL it); the SQL benchmarks have their own member
(examples/benchmark/sqlworker.py).
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
                self.stop.wait(0.05)  # a short pause between retries, cut short by halt()
                continue
            emit({"ack": key, "t": time.time()})

    def halt(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(10)


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
