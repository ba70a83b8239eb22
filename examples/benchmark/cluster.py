"""The coordinator's side of the workers: start them, talk JSON lines, stop them by PID.

Rules:
- Workers are started and stopped through the shared harness (`nodehost.bench`): in
  their own session, stopped by PID with `exit` over the pipe first, then SIGTERM,
  then SIGKILL, each wait bounded, on success, on error and on Ctrl-C.
- A worker's stderr goes to a log file; when a worker fails, its tail is in the error.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from examples.benchmark.worker import WorkerConfig
from nodehost.bench.processes import Child, WorkerFailed, Workers

__all__ = ["Cluster", "WorkerFailed"]


class Cluster:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.events: queue.Queue[tuple[int, dict[str, Any]]] = queue.Queue()
        self.progress: dict[int, dict[str, Any]] = {}
        self.workers = Workers(directory, stdin=True)

    def start(self, configs: list[WorkerConfig]) -> None:
        """Start one worker per config; each is known to `stop` at once."""
        for config in configs:
            proc = self.workers.start(
                f"worker{config.index + 1}",
                [sys.executable, "-m", "examples.benchmark.worker", config.to_argument()],
                stdout_pipe=True,
            )
            assert proc.stdout is not None
            threading.Thread(
                target=self._read, args=(config.index, proc.stdout), daemon=True
            ).start()

    @property
    def pids(self) -> list[int]:
        return self.workers.pids

    def _read(self, index: int, stream: IO[bytes]) -> None:
        try:
            for line in stream:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event.get("event") == "progress":
                    self.progress[index] = event
                else:
                    self.events.put((index, event))
        except (OSError, ValueError):
            pass  # the pipe was closed by `stop`
        self.events.put((index, {"event": "exited"}))

    def send(self, command: dict[str, Any], only: list[int] | None = None) -> None:
        line = (json.dumps(command) + "\n").encode()
        for index, proc in enumerate(self.workers.children):
            if only is not None and index not in only:
                continue
            assert proc.stdin is not None
            try:
                proc.stdin.write(line)
                proc.stdin.flush()
            except BrokenPipeError as exc:
                raise WorkerFailed(self.workers.failure(index, "it closed its pipe")) from exc

    def collect(
        self, name: str, timeout: float, only: list[int] | None = None
    ) -> dict[int, dict[str, Any]]:
        """One `name` event from each worker (or from `only`); a worker error raises."""
        wanted = set(range(len(self.workers.children)) if only is None else only)
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
                raise WorkerFailed(self.workers.failure(index, event.get("message", "")))
            elif kind == "exited":
                raise WorkerFailed(self.workers.failure(index, "it exited"))
        return got

    def stop(self) -> None:
        """Stop every worker by PID, politely first; bounded."""
        self.workers.stop(polite=_exit_line)


def _exit_line(child: Child) -> None:
    stdin = getattr(child, "stdin", None)
    if stdin is not None:
        stdin.write(b'{"cmd": "exit"}\n')
        stdin.close()
