"""Three nodehost.sqlite members (examples/benchmark/sqlworker.py) for the SQL benchmarks.

Rules: ports picked free (each client port with its Raft port beside it), every member
started through nodehost.bench's Workers and stopped by its PID (an `exit` line first,
then SIGTERM, then SIGKILL), every wait bounded; a member that exits fails the run
with the tail of its log.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from nodehost.bench import Workers, free_port_pairs
from nodehost.bench.processes import Child, WorkerFailed
from nodehost.sqlite.app import RAFT_PORT_OFFSET

READY_TIMEOUT = 120.0


class SqlMember:
    def __init__(self, workers: Workers, index: int, address: str) -> None:
        self.workers = workers
        self.index = index
        self.address = address
        self.id = 0
        self.process = workers.children[index]
        self._replies: queue.Queue[dict[str, Any] | None] = queue.Queue()
        assert self.process.stdout is not None
        threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()

    def _read(self, stdout: IO[bytes]) -> None:
        for line in stdout:
            try:
                self._replies.put(json.loads(line))
            except ValueError:
                continue  # not an answer (a stray print): answers are whole JSON lines
        self._replies.put(None)

    def reply(self, timeout: float) -> dict[str, Any]:
        try:
            answer = self._replies.get(timeout=timeout)
        except queue.Empty:
            raise WorkerFailed(
                self.workers.failure(self.index, f"no answer in {timeout:.0f} s")
            ) from None
        if answer is None:
            raise WorkerFailed(self.workers.failure(self.index, "it exited"))
        if "error" in answer:
            raise WorkerFailed(self.workers.failure(self.index, str(answer["error"])))
        return answer

    def ask(self, command: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(json.dumps(command).encode() + b"\n")
        stdin.flush()
        return self.reply(timeout)


class SqlCluster:
    """Use as a context manager: leaving it stops every member by its PID."""

    def __init__(self, directory: Path, size: int = 3, rtt: int = 50) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.workers = Workers(directory, stdin=True)
        self.addresses = [f"127.0.0.1:{p}" for p in free_port_pairs(size, RAFT_PORT_OFFSET)]
        self.members: list[SqlMember] = []
        try:
            for index, address in enumerate(self.addresses):
                command = [
                    sys.executable,
                    "-m",
                    "examples.benchmark.sqlworker",
                    "--dir",
                    str(directory / f"member{index + 1}"),
                    "--address",
                    address,
                    "--cluster",
                    ",".join(self.addresses),
                    "--rtt",
                    str(rtt),
                ]
                self.workers.start(f"member{index + 1}", command, stdout_pipe=True)
                self.members.append(SqlMember(self.workers, index, address))
            for member in self.members:
                member.id = int(member.reply(READY_TIMEOUT)["id"])
        except BaseException:
            self.stop()
            raise

    @property
    def pids(self) -> list[int]:
        return self.workers.pids

    def leader(self, timeout: float = 60.0) -> SqlMember:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leader_id = self.members[0].ask({"cmd": "leader"}).get("leader", 0)
            for member in self.members:
                if member.id == leader_id:
                    return member
            time.sleep(0.1)
        raise WorkerFailed(f"no leader among the SQL members within {timeout:.0f} s")

    def stop(self) -> None:
        self.workers.stop(_exit_line, grace=15.0)

    def __enter__(self) -> SqlCluster:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _exit_line(child: Child) -> None:
    if isinstance(child, subprocess.Popen) and child.stdin is not None:
        child.stdin.write(b'{"cmd": "exit"}\n')
        child.stdin.flush()
