"""Start, talk to, SIGKILL and restart member processes (tests/sqlite/member.py)."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


class Member:
    """One member process; its stdout lines are read by a thread into queues."""

    def __init__(self, directory: Path, address: str, cluster: list[str], rtt: int = 20) -> None:
        self.directory = directory
        self.address = address
        self.cluster = cluster
        self.rtt = rtt
        self.acks: list[tuple[str, float]] = []
        self.process: subprocess.Popen[str] | None = None
        self._replies: queue.Queue[dict[str, Any]] = queue.Queue()
        self.id = 0

    def start(self, timeout: float = 60.0) -> None:
        self.launch()
        self.wait_ready(timeout)

    def launch(self) -> None:
        self._replies = queue.Queue()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.sqlite.member",
                "--dir",
                str(self.directory),
                "--address",
                self.address,
                "--cluster",
                ",".join(self.cluster),
                "--rtt",
                str(self.rtt),
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        threading.Thread(target=self._read, args=(self.process,), daemon=True).start()

    def wait_ready(self, timeout: float = 60.0) -> None:
        ready = self._reply(timeout)
        assert ready.get("event") == "ready", ready
        self.id = int(ready["id"])

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            message = json.loads(line)
            if "ack" in message:
                self.acks.append((message["ack"], message["t"]))
            else:
                self._replies.put(message)

    def _reply(self, timeout: float) -> dict[str, Any]:
        try:
            return self._replies.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"member {self.address} did not answer in {timeout} s") from None

    def ask(self, command: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self._reply(timeout)

    def kill(self) -> None:
        """SIGKILL by PID, then reap."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            self.ask({"cmd": "exit"}, timeout=0.1)
        except (AssertionError, BrokenPipeError, OSError):
            pass
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()


def wait_until(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
