"""NodeHost processes and the `nodehost` command, for the operator tool tests.

Rules: ports are picked free on 127.0.0.1; every process is started here and stopped
here by its PID (SIGTERM, then SIGKILL past a bound); every wait is bounded and says
what it waited for; a host's stderr goes to a log file a failing test shows.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from nodehost.tools import AdminClient, ToolError
from tests.host.cluster import free_ports

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")
COMMAND_SECONDS = 60.0


def nodehost_command() -> list[str]:
    """The installed console script, as a user runs it."""
    script = Path(sys.executable).with_name("nodehost")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "nodehost.tools"]


def run_nodehost(*args: str, timeout: float = COMMAND_SECONDS) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("NODEHOST_ADMIN", None)
    return subprocess.run(
        [*nodehost_command(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env=env,
    )


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 30.0) -> T:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except (OSError, ValueError, AssertionError) as exc:
            last = exc
            value = None
        if value is not None and value is not False:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what} (last: {last})")


class Host:
    """One NodeHost process (tests/tools/hostproc.py)."""

    def __init__(self, root: Path, name: str, replica_id: int, **spec: Any) -> None:
        self.name = name
        self.replica_id = replica_id
        self.dir = root / name
        (port,) = free_ports(1)
        self.port = port
        self.admin_socket = root / f"{name}.sock"
        self.spec: dict[str, Any] = {
            "dir": str(self.dir),
            "raft_address": f"127.0.0.1:{port}",
            "admin_address": f"unix:{self.admin_socket}",
            "replica_id": replica_id,
            "shards": [1],
            "members": {},
            **spec,
        }
        self.log_path = root / f"{name}.log"
        self.proc: subprocess.Popen[str] | None = None
        self.node_host_id = ""

    @property
    def address(self) -> str:
        return str(self.spec["raft_address"])

    @property
    def admin(self) -> str:
        return str(self.spec["admin_address"])

    def start(self, timeout: float = 60.0) -> None:
        assert self.proc is None or self.proc.poll() is not None, f"{self.name} runs already"
        env = dict(os.environ, PYTHONPATH=str(REPO))
        with open(self.log_path, "a") as log:
            log.write(f"---- start {json.dumps(self.spec)}\n")
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.tools.hostproc", json.dumps(self.spec)],
                cwd=REPO,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        line = self._line(timeout)
        ready = json.loads(line)
        self.node_host_id = ready["ready"]

    def _line(self, timeout: float) -> str:
        proc = self.proc
        assert proc is not None and proc.stdout is not None
        import selectors

        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                raise AssertionError(f"{self.name} said nothing in {timeout:g}s:\n{self.log()}")
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"{self.name} exited ({proc.wait(10)}):\n{self.log()}")
        return line

    def request(self, op: str, timeout: float = 30.0, **fields: Any) -> Any:
        proc = self.proc
        assert proc is not None and proc.stdin is not None
        proc.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        proc.stdin.flush()
        reply = json.loads(self._line(timeout))
        if "error" in reply:
            raise RuntimeError(f"{self.name}: {op}: {reply['error']}")
        return reply["ok"]

    def put(self, key: str, value: Any, shard: int = 1, timeout: float = 20.0) -> None:
        """Write, retrying while the shard has no leader (a dropped write never applied)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.request("put", shard=shard, k=key, v=value)
                return
            except RuntimeError as exc:
                if "ShardNotReady" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def all(self, shard: int = 1) -> dict[str, Any]:
        return wait_for(
            f"a linearizable read of shard {shard} on {self.name}",
            lambda: self._try(lambda: self.request("all", shard=shard)),
        )

    def _try(self, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except RuntimeError:
            return None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then the exit code (SIGKILL if it does not come in time)."""
        proc = self.proc
        assert proc is not None
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(30)
                raise AssertionError(f"{self.name} ignored SIGTERM:\n{self.log()}") from None
        self._close_pipes()
        return proc.returncode

    def kill(self) -> None:
        proc = self.proc
        assert proc is not None
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(30)
        self._close_pipes()

    def _close_pipes(self) -> None:
        proc = self.proc
        assert proc is not None
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:
                    pass

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""

    def nodehost(
        self, *args: str, timeout: float = COMMAND_SECONDS
    ) -> subprocess.CompletedProcess[str]:
        """`nodehost ARGS --admin <this host>`."""
        return run_nodehost(*args, "--admin", self.admin, timeout=timeout)


class Group:
    """Hosts that found shard(s) together, with replica ids 1..n."""

    def __init__(self, root: Path, size: int = 3, **spec: Any) -> None:
        self.root = root
        self.hosts = [Host(root, f"nh{i}", i, **spec) for i in range(1, size + 1)]
        members = {str(h.replica_id): h.address for h in self.hosts}
        for h in self.hosts:
            h.spec["members"] = members

    def start(self) -> None:
        for h in self.hosts:
            h.start()

    def stop(self) -> None:
        for h in self.hosts:
            if h.alive():
                try:
                    h.stop()
                except AssertionError:
                    pass

    def logs(self) -> str:
        return "\n".join(f"==== {h.name}\n{h.log()}" for h in self.hosts)

    def leader(self, shard: int = 1, timeout: float = 30.0) -> Host:
        """The host whose replica leads, as every running host sees it."""

        def agreed() -> Host | None:
            seen = set()
            for h in self.hosts:
                if not h.alive():
                    continue
                try:
                    with AdminClient(h.admin) as admin:
                        seen.add(admin.leader(shard).leader_id)
                except ToolError:
                    return None
            if len(seen) != 1 or 0 in seen:
                return None
            rid = seen.pop()
            return next((h for h in self.hosts if h.replica_id == rid and h.alive()), None)

        return wait_for(f"the hosts to agree on a leader of shard {shard}", agreed, timeout)
