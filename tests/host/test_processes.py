"""NodeHosts in separate processes, SIGKILLed and restarted while clients write.

Every write a client saw acknowledged must be on every replica afterwards, and the
replicas' state machines must be equal.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI
from tests.host.cluster import free_ports

ROOT = Path(__file__).resolve().parents[2]


class Child:
    """One NodeHost process; requests carry ids so a late reply is never mistaken for
    the answer to a later request."""

    def __init__(self, root: Path, rid: int, members: dict[int, str]) -> None:
        self.root, self.rid, self.members = root, rid, members
        self.proc: subprocess.Popen[str] | None = None
        self.replies: queue.Queue[dict[str, Any]] = queue.Queue()
        self.lock = threading.Lock()
        self.ids = itertools.count()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.host.child",
                str(self.root / f"nh{self.rid}"),
                self.members[self.rid],
                json.dumps(self.members),
                str(self.rid),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
        )
        self.replies = queue.Queue()
        threading.Thread(target=self._pump, args=(self.proc, self.replies), daemon=True).start()
        ready = self.replies.get(timeout=30)
        assert "ready" in ready, f"child {self.rid} did not start"

    @staticmethod
    def _pump(proc: subprocess.Popen[str], replies: queue.Queue[dict[str, Any]]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                replies.put(json.loads(line))
            except ValueError:
                continue

    def request(self, **request: Any) -> dict[str, Any] | None:
        """None when the process is gone or did not answer in time."""
        with self.lock:
            proc = self.proc
            if proc is None or proc.poll() is not None:
                return None
            request["id"] = next(self.ids)
            try:
                assert proc.stdin is not None
                proc.stdin.write(json.dumps(request) + "\n")
                proc.stdin.flush()
            except (BrokenPipeError, OSError):
                return None
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                try:
                    reply = self.replies.get(timeout=0.2)
                except queue.Empty:
                    if proc.poll() is not None:
                        return None
                    continue
                if reply.get("id") == request["id"]:
                    return reply
            return None

    def kill(self) -> None:
        with self.lock:
            if self.proc is not None and self.proc.poll() is None:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


@pytest.mark.integration
def test_sigkill_and_restart_while_clients_write(tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("KILL_SEED", "7")))
    members = {i + 1: f"127.0.0.1:{p}" for i, p in enumerate(free_ports(3))}
    children = {rid: Child(tmp_path, rid, members) for rid in members}
    acknowledged: set[str] = set()
    stop = threading.Event()

    def client(rid: int) -> None:
        n = 0
        while not stop.is_set():
            key = f"c{rid}-{n}"
            n += 1
            reply = children[rid].request(op="put", k=key, v=n)
            if reply is not None and "ok" in reply:
                acknowledged.add(key)
            elif reply is None:
                time.sleep(0.05)

    try:
        for child in children.values():
            child.start()
        clients = [threading.Thread(target=client, args=(rid,)) for rid in members]
        for t in clients:
            t.start()
        rounds = 3 if IN_CI else 10
        for _ in range(rounds):
            time.sleep(rng.uniform(0.5, 1.5))
            victim = children[rng.choice(list(children))]
            victim.kill()
            time.sleep(rng.uniform(0.1, 1.0))
            victim.start()
        time.sleep(1.0)
        stop.set()
        for t in clients:
            t.join(30)
        assert len(acknowledged) > 20
        contents = []
        for child in children.values():
            deadline = time.monotonic() + 30
            while True:
                reply = child.request(op="all")
                if reply is not None and "ok" in reply:
                    break
                assert time.monotonic() < deadline, f"replica {child.rid} never answered"
                time.sleep(0.2)
            data = reply["ok"]
            missing = acknowledged - set(data)
            assert not missing, (
                f"replica {child.rid} lost acknowledged writes: {sorted(missing)[:5]}"
            )
            contents.append(data)
        assert all(c == contents[0] for c in contents)
        hashes = {child.request(op="hash")["ok"] for child in children.values()}  # type: ignore[index]
        assert len(hashes) == 1
    finally:
        stop.set()
        for child in children.values():
            child.stop()
