"""Daemon processes for the cluster tests: free addresses, start, SIGTERM, SIGKILL, logs,
and example-microctl run as a user runs it.

Every process is started here and stopped by its PID (SIGTERM, then SIGKILL if it
lingers); the `daemons` fixture stops whatever a test left running.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from examples.microcluster import microctl
from nodehost.cluster import Client, ClusterError
from nodehost.cluster.names import DATABASE_PORT_OFFSET, RAFT_PORT_OFFSET

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
T = TypeVar("T")


def free_addresses(count: int, *, digits: int = 5) -> list[str]:
    """Member addresses whose port, port + 1000 and port + 2000 are all free now.

    Ports are drawn below the kernel's ephemeral range, where no outgoing connection
    (of this test or another) takes one between the pick and the daemon's bind, and
    never twice in one test run, so a stopped member's port stays its own for its
    restart; each pytest-xdist worker draws from its own slice of the range, so two
    workers never pick one port. `digits` 4 keeps addresses as long as the README's
    (127.0.0.1:9001)."""
    low, high = _worker_slice(
        *((2000, 7999) if digits == 4 else (10000, max(20000, _EPHEMERAL_START - 2001)))
    )
    found: list[str] = []
    for _ in range(10_000):
        if len(found) == count:
            return found
        port = random.randint(low, high)
        if port in _HANDED_OUT:
            continue
        if all(_bindable(port + offset) for offset in (0, DATABASE_PORT_OFFSET, RAFT_PORT_OFFSET)):
            _HANDED_OUT.add(port)
            found.append(f"127.0.0.1:{port}")
    raise AssertionError(f"found only {len(found)} of {count} free member addresses")


def _worker_slice(low: int, high: int) -> tuple[int, int]:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if not worker.startswith("gw") or count < 2:
        return low, high
    size = (high - low + 1) // count
    start = low + int(worker[2:]) % count * size
    return start, start + size - 1


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_EPHEMERAL_START = _ephemeral_start()
_HANDED_OUT: set[int] = set()


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_for(condition: Callable[[], T], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except (ClusterError, AssertionError) as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last})")
        time.sleep(0.1)


class DaemonProcess:
    def __init__(self, state_dir: Path, command: list[str], log: Path) -> None:
        self.state_dir = state_dir
        self.command = command
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> DaemonProcess:
        assert self.process is None or self.process.poll() is not None
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [*self.command, "--state-dir", str(self.state_dir)],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
        return self

    def wait_answering(self, timeout: float = 90.0) -> dict[str, object]:
        """Until the control socket answers (the daemon may still be starting)."""
        client = Client.local(self.state_dir, timeout=10.0)

        def answering() -> dict[str, object]:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the daemon exited with {self.process.returncode}:\n{self.logs()}"
                )
            return client.status()

        return wait_for(answering, timeout, f"{self.state_dir} to answer")

    def wait_ready(self, timeout: float = 90.0) -> None:
        self.wait_answering(timeout)
        Client.local(self.state_dir, timeout=10.0).wait_ready(timeout)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 60.0, how: signal.Signals = signal.SIGTERM) -> int:
        """SIGTERM (or `how`) and wait; SIGKILL if it does not exit in `timeout`."""
        process = self.process
        if process is None:
            return 0
        if process.poll() is None:
            process.send_signal(how)
            try:
                return process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(30)
                raise AssertionError(
                    f"{self.state_dir}: no exit {timeout} s after SIGTERM"
                ) from None
        return int(process.returncode)

    def kill(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(30)

    def logs(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


def microd(state_dir: Path, *flags: str) -> DaemonProcess:
    return DaemonProcess(
        state_dir, [str(BIN / "example-microd"), *flags], state_dir.parent / f"{state_dir.name}.log"
    )


def program(state_dir: Path, *flags: str) -> DaemonProcess:
    """The tests' own daemon (tests/cluster/program.py), built on the library."""
    return DaemonProcess(
        state_dir,
        [sys.executable, "-m", "tests.cluster.program", *flags],
        state_dir.parent / f"{state_dir.name}.log",
    )


def ctl(
    state_dir: Path, *arguments: str, timeout: float = 180.0
) -> subprocess.CompletedProcess[str]:
    """example-microctl --state-dir STATE_DIR ARGUMENTS..., as a user types it."""
    return subprocess.run(
        [str(BIN / "example-microctl"), "--state-dir", str(state_dir), *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def ctl_here(state_dir: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """example-microctl's main() in this process: the installed command's parser, client
    and output, against the real daemon, without a process start apiece (each costs most
    of a second of CPU in CI; `ctl` runs the installed command where that is the point)."""
    out, err = io.StringIO(), io.StringIO()
    command = ["--state-dir", str(state_dir), *arguments]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = microctl.main(command)
        except SystemExit as exc:  # argparse: --help, usage errors
            code = exc.code if isinstance(exc.code, int) else 1
    return subprocess.CompletedProcess(
        ["example-microctl", *command], code, out.getvalue(), err.getvalue()
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}{result.stdout}"
    return result.stdout


def fails(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert result.returncode == 1, f"expected failure, got {result.returncode}: {result.stdout}"
    message = result.stderr
    assert message.startswith("Error: "), message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message
