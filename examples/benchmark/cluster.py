"""The coordinator's side of the workers: start them, talk JSON lines, stop them by PID.

Rules:
- Every worker is started here and stopped here by its PID: `exit` over the pipe
  first, then SIGTERM, then SIGKILL, each wait bounded. This runs on success, on
  error and on Ctrl-C (workers run in their own session, so the terminal's Ctrl-C
  reaches only the coordinator, which then stops them).
- A worker's stderr goes to a log file; when a worker fails, its tail is in the error.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from examples.benchmark.worker import WorkerConfig

REPO = Path(__file__).resolve().parents[2]


class WorkerFailed(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Cluster:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.events: queue.Queue[tuple[int, dict[str, Any]]] = queue.Queue()
        self.progress: dict[int, dict[str, Any]] = {}
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def start(self, configs: list[WorkerConfig]) -> None:
        """Start one worker per config; each is in `procs` (so `stop` reaches it) at once."""
        path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "PYTHONPATH": path}
        for config in configs:
            log_path = self.directory / f"worker{config.index + 1}.log"
            with open(log_path, "wb") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "examples.benchmark.worker", config.to_argument()],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    env=env,
                    start_new_session=True,
                )
            self.procs.append(proc)
            self.logs.append(log_path)
            assert proc.stdout is not None
            threading.Thread(
                target=self._read, args=(config.index, proc.stdout), daemon=True
            ).start()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def _read(self, index: int, stream: IO[bytes]) -> None:
        for line in stream:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == "progress":
                self.progress[index] = event
            else:
                self.events.put((index, event))
        self.events.put((index, {"event": "exited"}))

    def send(self, command: dict[str, Any], only: list[int] | None = None) -> None:
        line = (json.dumps(command) + "\n").encode()
        for index, proc in enumerate(self.procs):
            if only is not None and index not in only:
                continue
            assert proc.stdin is not None
            try:
                proc.stdin.write(line)
                proc.stdin.flush()
            except BrokenPipeError as exc:
                raise WorkerFailed(self._failure(index, "it closed its pipe")) from exc

    def collect(
        self, name: str, timeout: float, only: list[int] | None = None
    ) -> dict[int, dict[str, Any]]:
        """One `name` event from each worker (or from `only`); a worker error raises."""
        wanted = set(range(len(self.procs)) if only is None else only)
        got: dict[int, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout
        while wanted - got.keys():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                missing = sorted(i + 1 for i in wanted - got.keys())
                raise WorkerFailed(f"worker(s) {missing} sent no {name!r} within {timeout:g}s")
            try:
                index, event = self.events.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            kind = event.get("event")
            if kind == name:
                got[index] = event
            elif kind == "error":
                raise WorkerFailed(self._failure(index, event.get("message", "")))
            elif kind == "exited":
                raise WorkerFailed(self._failure(index, "it exited"))
        return got

    def _failure(self, index: int, what: str) -> str:
        try:
            tail = self.logs[index].read_text(errors="replace").strip().splitlines()[-15:]
        except OSError:
            tail = []
        details = "\n  ".join(tail)
        return f"worker {index + 1} (pid {self.procs[index].pid}) failed: {what}" + (
            f"\n  {details}" if details else ""
        )

    def stop(self) -> None:
        """Stop every worker by PID, politely first; bounded."""
        for proc in self.procs:
            if proc.poll() is None and proc.stdin is not None:
                try:
                    proc.stdin.write(b'{"cmd": "exit"}\n')
                    proc.stdin.close()
                except (OSError, ValueError):
                    pass
        self._wait_all(20.0)
        for sig, bound in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
            alive = [p for p in self.procs if p.poll() is None]
            if not alive:
                return
            for proc in alive:
                os.kill(proc.pid, sig)
            self._wait_all(bound)

    def _wait_all(self, bound: float) -> None:
        deadline = time.monotonic() + bound
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
