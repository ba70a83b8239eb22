"""A real etcd server for tests: Debian's etcd-server, on free loopback ports.

Rules: the client and peer ports are picked free on 127.0.0.1; the data directory is the
test's temporary one; the process is started here and stopped here by its PID (SIGTERM,
then SIGKILL after a bound); `start` waits, bounded, for /health to say true. A missing
etcd binary fails the test with the command that installs it (CI installs it).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.host.cluster import free_ports


def etcd_binary() -> str:
    path = shutil.which("etcd")
    if path is None:
        raise AssertionError("etcd is not installed: apt-get install etcd-server (.ci/run does)")
    return path


class EtcdServer:
    def __init__(self, root: Path, name: str = "etcd") -> None:
        self.root = root
        self.name = name
        self.client_port, self.peer_port = free_ports(2)
        self.data_dir = root / f"{name}-data"
        self.log_path = root / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    def start(self, timeout: float = 30.0) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        peer = f"http://127.0.0.1:{self.peer_port}"
        argv = [
            etcd_binary(),
            "--name", self.name,
            "--data-dir", str(self.data_dir),
            "--listen-client-urls", self.endpoint,
            "--advertise-client-urls", self.endpoint,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"{self.name}={peer}",
            "--logger", "zap",
            "--log-level", "warn",
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"etcd exited with {self.proc.returncode}:\n{self.log()}")
            if self.healthy():
                return
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"etcd was not healthy within {timeout:g}s:\n{self.log()}")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.endpoint + "/health", timeout=1) as response:
                return bool(json.loads(response.read()).get("health") == "true")
        except (OSError, ValueError):
            return False

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM by PID, then SIGKILL if it does not exit in time."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    # ------------------------------------------------------------ direct access

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            self.endpoint + path, data=json.dumps(body).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer

    def get(self, key: str) -> bytes | None:
        answer = self._post("/v3/kv/range", {"key": base64.b64encode(key.encode()).decode()})
        kvs = answer.get("kvs")
        return base64.b64decode(kvs[0].get("value", "")) if kvs else None

    def get_json(self, key: str) -> dict[str, Any] | None:
        value = self.get(key)
        return None if value is None else dict(json.loads(value))

    def put(self, key: str, value: bytes) -> None:
        self._post(
            "/v3/kv/put",
            {
                "key": base64.b64encode(key.encode()).decode(),
                "value": base64.b64encode(value).decode(),
            },
        )

    def delete(self, key: str) -> None:
        self._post("/v3/kv/deleterange", {"key": base64.b64encode(key.encode()).decode()})
