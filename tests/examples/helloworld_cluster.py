"""Real `example-helloworld` processes in pseudo-terminals, on ports picked free.

Rules:
- Every process runs the installed console command in one shared working directory,
  as a person runs it in three terminals side by side; HELLOWORLD_ADDRESSES moves the
  three built-in addresses to free ports on 127.0.0.1.
- `close` stops every process this cluster started, by PID.
"""

from __future__ import annotations

import os
import re
import socket
import sys
import time
from pathlib import Path

from pty_terminal import Terminal

COMMAND = str(Path(sys.executable).with_name("example-helloworld"))
START_TIMEOUT = 60.0  # a loaded 2-core machine imports grpc slowly
STEP_TIMEOUT = 30.0
UPDATE = re.compile(r"from ExampleStateMachine\.Update\(\), msg: (.*?), count:(\d+)$", re.M)
CAPTURED = re.compile(r"snapshot captured, index \d+$", re.M)


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def applied(terminal: Terminal) -> list[tuple[str, int]]:
    """Every (message, count) the replica's state machine printed, in order."""
    return [(m.group(1), int(m.group(2))) for m in UPDATE.finditer(terminal.text)]


def updates_since_last_snapshot(terminal: Terminal) -> int:
    text = terminal.text
    last = max((m.end() for m in CAPTURED.finditer(text)), default=0)
    return len(UPDATE.findall(text, last))


class Cluster:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        ports = free_ports(4)
        self.addresses = {i: f"127.0.0.1:{port}" for i, port in enumerate(ports, start=1)}
        self.env = dict(os.environ)
        self.env.update(
            HELLOWORLD_ADDRESSES=",".join(self.addresses[i] for i in (1, 2, 3)),
            TERM="xterm-256color",
        )
        self.terminals: list[Terminal] = []

    def start(self, *flags: str) -> Terminal:
        """Run `example-helloworld <flags>` in a new terminal and wait for its prompt."""
        terminal = Terminal([COMMAND, *flags], str(self.workdir), self.env)
        self.terminals.append(terminal)
        terminal.expect(r"node address: \S+", START_TIMEOUT)
        terminal.wait_for_prompt(START_TIMEOUT)
        return terminal

    def propose(self, terminal: Terminal, text: str, timeout: float = STEP_TIMEOUT) -> int:
        """Type `text` until the local state machine prints it (a proposal made while no
        leader is known fails, and a person types it again); its count."""
        deadline = time.monotonic() + timeout
        while True:
            terminal.wait_for_prompt(STEP_TIMEOUT)
            mark = terminal.mark()
            terminal.type(text)
            match = terminal.expect(
                rf"msg: {re.escape(text)}, count:(\d+)$|SyncPropose returned error .*$",
                STEP_TIMEOUT,
                since=mark,
            )
            if match.group(1) is not None:
                return int(match.group(1))
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} was never applied: {match.group(0)}")

    def change_membership(self, terminal: Terminal, command: str, expect_failure: str = "") -> str:
        """Type a membership command until it completes (or fails with `expect_failure`
        in its reason); the result line."""
        deadline = time.monotonic() + STEP_TIMEOUT
        while True:
            terminal.wait_for_prompt(STEP_TIMEOUT)
            mark = terminal.mark()
            terminal.type(command)
            match = terminal.expect(
                r"membership change (completed successfully|failed, .*)$",
                STEP_TIMEOUT,
                since=mark,
            )
            line = match.group(0)
            if match.group(1) == "completed successfully":
                if expect_failure:
                    raise AssertionError(f"{command!r} succeeded; expected {expect_failure!r}")
                return line
            if expect_failure and expect_failure in line:
                return line
            if time.monotonic() > deadline:  # e.g. timed out during an election: retry
                raise AssertionError(f"{command!r}: {line}")

    def close(self) -> None:
        for terminal in self.terminals:
            terminal.close()
