"""The controller's side of the worker processes: start, kill, pause, talk.

Rules:
- Every process this module starts is stopped by it, by PID (`Cluster.close`).
- Every wait is bounded. A request to a paused or dead host answers None at once
  (paused) or at its deadline; a late reply is matched by id and discarded.
- The controller owns the network faults: it keeps the wanted cuts and random faults
  and hands each host its share at every change and at every (re)start.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


class Host:
    """One worker process and the host (directory, address) it stands for."""

    def __init__(self, index: int, run_dir: Path, base_config: dict[str, Any]) -> None:
        self.index = index
        self.dir = run_dir / f"h{index}"
        self.base_config = base_config
        self.address: str = base_config["addresses"][index]
        self.proc: subprocess.Popen[bytes] | None = None
        self.incarnation = 0
        self.paused = False
        self.ready: dict[str, Any] = {}
        self.replica_config: dict[str, Any] = {}  # the settings in force, as it reported
        self._replies: dict[int, queue.Queue[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.dir.mkdir(parents=True, exist_ok=True)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self, extra: dict[str, Any], timeout: float = 60.0) -> bool:
        """Start a new incarnation; True once it reported ready."""
        assert not self.alive
        self.incarnation += 1
        config = {
            **self.base_config,
            **extra,
            "host": self.index,
            "dir": str(self.dir / "nh"),
            "incarnation": self.incarnation,
            "history": str(self.dir / f"history-{self.incarnation}.jsonl"),
        }
        path = self.dir / f"config-{self.incarnation}.json"
        path.write_text(json.dumps(config))
        log = open(self.dir / "stderr.log", "ab")  # noqa: SIM115 - owned by the process
        log.write(f"==== incarnation {self.incarnation} ====\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.chaos.worker", str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            cwd=ROOT,
        )
        log.close()
        self.paused = False
        ready: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._pump, args=(self.proc, ready), daemon=True).start()
        try:
            first = ready.get(timeout=timeout)
        except queue.Empty:
            return False
        self.ready = first.get("ready", {})
        self.replica_config = first.get("config", {})
        return "ready" in first

    def _pump(self, proc: subprocess.Popen[bytes], ready: queue.Queue[dict[str, Any]]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if "ready" in record:
                ready.put(record)
                continue
            with self._lock:
                waiter = self._replies.get(record.get("id", -1))
            if waiter is not None:
                waiter.put(record)

    def request(self, op: str, timeout: float = 10.0, **args: Any) -> dict[str, Any] | None:
        """The reply ({"ok": ...} or {"error": ...}), or None: dead, paused or too slow."""
        proc = self.proc
        if proc is None or proc.poll() is not None or self.paused:
            return None
        rid = next(self._ids)
        waiter: queue.Queue[dict[str, Any]] = queue.Queue()
        with self._lock:
            self._replies[rid] = waiter
        try:
            line = json.dumps({"id": rid, "op": op, "timeout": timeout, **args}) + "\n"
            try:
                assert proc.stdin is not None
                with self._lock:
                    proc.stdin.write(line.encode())
                    proc.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                return None
            deadline = time.monotonic() + timeout + 5.0
            while time.monotonic() < deadline:
                try:
                    return waiter.get(timeout=0.2)
                except queue.Empty:
                    if proc.poll() is not None:
                        return None
            return None
        finally:
            with self._lock:
                self._replies.pop(rid, None)

    def kill(self) -> None:
        self.send_kill()
        self.reap()

    def send_kill(self) -> None:
        """SIGKILL without waiting, so that several hosts die at the same instant."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)

    def reap(self) -> None:
        if self.proc is not None:
            self.proc.wait(30)
        self.paused = False

    def pause(self) -> None:
        if self.alive and not self.paused:
            assert self.proc is not None
            os.kill(self.proc.pid, signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        if self.alive and self.paused:
            assert self.proc is not None
            os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False

    def stop(self) -> None:
        """Ask the worker to close, then make sure it is gone."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        self.resume()
        try:
            assert proc.stdin is not None
            with self._lock:
                proc.stdin.write(b'{"op": "exit"}\n')
                proc.stdin.flush()
            proc.wait(20)
        except (BrokenPipeError, OSError, ValueError, subprocess.TimeoutExpired):
            pass
        self.kill()

    def histories(self) -> list[Path]:
        return sorted(self.dir.glob("history-*.jsonl"))


@dataclass
class Network:
    """The wanted faults: directed cuts between hosts, random per-message faults."""

    cuts: set[tuple[int, int]] = field(default_factory=set)
    drop: float = 0.0
    duplicate: float = 0.0
    delay: tuple[float, float] = (0.0, 0.0)
    delay_rate: float = 0.0

    def for_host(self, host: int, addresses: list[str]) -> dict[str, Any]:
        return {
            "cuts": [[addresses[a], addresses[b]] for a, b in sorted(self.cuts) if host in (a, b)],
            "drop": self.drop,
            "duplicate": self.duplicate,
            "delay": list(self.delay),
            "delay_rate": self.delay_rate,
        }

    def healthy(self) -> bool:
        return not self.cuts and not (self.drop or self.duplicate or self.delay_rate)


class Cluster:
    def __init__(self, run_dir: Path, base_config: dict[str, Any]) -> None:
        self.run_dir = run_dir
        self.addresses: list[str] = base_config["addresses"]
        self.hosts = [Host(i, run_dir, base_config) for i in range(len(self.addresses))]
        self.network = Network()
        self.rewrite: dict[int, list[dict[str, int]]] = {}
        self.clients_on = True

    def start_host(self, host: Host) -> bool:
        extra = {
            "faults": self.network.for_host(host.index, self.addresses),
            "rewrite": self.rewrite.get(host.index, []),
            "clients_on": self.clients_on,
        }
        return host.start(extra)

    def start(self) -> None:
        started: dict[int, bool] = {}

        def one(h: Host) -> None:
            started[h.index] = self.start_host(h)

        threads = [threading.Thread(target=one, args=(h,), daemon=True) for h in self.hosts]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        failed = [h.index for h in self.hosts if not started.get(h.index)]
        if failed:
            raise RuntimeError(f"hosts {failed} did not start; see {self.run_dir}/h*/stderr.log")

    def live(self) -> list[Host]:
        return [h for h in self.hosts if h.alive and not h.paused]

    def broadcast(
        self, op: str, hosts: Iterable[Host] | None = None, timeout: float = 10.0, **args: Any
    ) -> dict[int, dict[str, Any] | None]:
        """Send one command to many hosts at once; replies by host index."""
        targets = list(hosts) if hosts is not None else self.live()
        replies: dict[int, dict[str, Any] | None] = {}

        def one(h: Host) -> None:
            replies[h.index] = h.request(op, timeout, **args)

        threads = [threading.Thread(target=one, args=(h,), daemon=True) for h in targets]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout + 10)
        return replies

    def set_network(self, network: Network) -> list[int]:
        """Hand every live host its share; the hosts that did not confirm (a host not
        running takes its share when it starts)."""
        self.network = network
        missed = []
        for h in self.live():
            reply = h.request("faults", 5.0, faults=network.for_host(h.index, self.addresses))
            if reply is None or "ok" not in reply:
                missed.append(h.index)
        return missed

    def set_rewrite(self, rules: dict[int, list[dict[str, int]]]) -> list[int]:
        """Like `set_network`, for the send filter's rules."""
        self.rewrite = rules
        missed = []
        for h in self.live():
            reply = h.request("rewrite", 5.0, rules=rules.get(h.index, []))
            if reply is None or "ok" not in reply:
                missed.append(h.index)
        return missed

    def states(self) -> dict[int, dict[str, Any]]:
        """Each live host's view: {"shards": {shard: {...}}, "fatal": ...}."""
        return {
            i: r["ok"]
            for i, r in self.broadcast("state", timeout=10.0).items()
            if r is not None and "ok" in r
        }

    def leaders(self) -> dict[int, tuple[int, int]]:
        """shard -> (host index of its leader, term), as the newest term seen says."""
        states = self.states()
        best: dict[int, tuple[int, int]] = {}
        for host, state in states.items():
            for shard, s in state["shards"].items():
                if s["leader"] and s["leader"] == s["rid"]:
                    term = s["term"]
                    if int(shard) not in best or best[int(shard)][1] < term:
                        best[int(shard)] = (host, term)
        return best

    def close(self) -> None:
        threads = [threading.Thread(target=h.stop, daemon=True) for h in self.hosts]
        for t in threads:
            t.start()
        for t in threads:
            t.join(40)
        for h in self.hosts:
            h.kill()
