"""Benchmark workers: started here, stopped here by their PID, whatever happens.

Rules:
- A worker runs in its own session, so a Ctrl-C at the terminal reaches only the
  coordinator, which then stops every worker it started (a worker never outlives it).
- Stopping is bounded at every step: the caller's polite request first (a pipe
  command, an `exit` line), then SIGTERM, then SIGKILL, each followed by a bounded
  wait. `stop` runs on success, on error and on Ctrl-C (a context manager).
- A worker's stdout and stderr go to a log file in the run's directory; a failure
  message carries the tail of that log.
- Children may be `subprocess.Popen` objects or `multiprocessing` processes; both are
  waited for through their own objects, so they are reaped where they were started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import TracebackType
from typing import IO

Child = subprocess.Popen[bytes] | BaseProcess


def _alive(child: Child) -> bool:
    if isinstance(child, BaseProcess):
        return child.is_alive()
    return child.poll() is None


def _wait(children: Sequence[Child], bound: float) -> None:
    deadline = time.monotonic() + bound
    for child in children:
        left = max(0.0, deadline - time.monotonic())
        if isinstance(child, BaseProcess):
            child.join(left)
        else:
            try:
                child.wait(timeout=left)
            except subprocess.TimeoutExpired:
                pass


def stop_children(
    children: Sequence[Child],
    polite: Callable[[Child], None] | None = None,
    grace: float = 20.0,
    bound: float = 10.0,
) -> None:
    """Stop every child by PID: `polite(child)` (then `grace` s), SIGTERM, SIGKILL."""
    if polite is not None:
        for child in children:
            if _alive(child):
                try:
                    polite(child)
                except (OSError, ValueError):
                    pass  # its pipe is gone: the signals below still reach it
        _wait(children, grace)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = [c for c in children if _alive(c)]
        if not alive:
            return
        for child in alive:
            pid = child.pid
            if pid is not None:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        _wait(alive, bound)


class WorkerFailed(RuntimeError):
    """A worker exited, closed its pipe or reported an error; the message has its log."""


class Workers:
    """Processes started from command lines, each with a log file, all stopped by PID.

    Use as a context manager: leaving it (normally, by an exception or by Ctrl-C)
    stops every worker it started.
    """

    def __init__(self, directory: Path, stdin: bool = False) -> None:
        self.directory = directory
        self.children: list[subprocess.Popen[bytes]] = []
        self.names: list[str] = []
        self.logs: list[Path] = []
        self._stdin = stdin

    def start(
        self,
        name: str,
        command: Sequence[str],
        env: Mapping[str, str] | None = None,
        stdout_pipe: bool = False,
        cwd: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start one worker; it is in `children` (so `stop` reaches it) at once."""
        log_path = self.directory / f"{name}.log"
        with open(log_path, "wb") as log:
            child = subprocess.Popen(
                list(command),
                stdin=subprocess.PIPE if self._stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE if stdout_pipe else log,
                stderr=log if stdout_pipe else subprocess.STDOUT,
                env=None if env is None else dict(env),
                cwd=cwd,
                start_new_session=True,
            )
        self.children.append(child)
        self.names.append(name)
        self.logs.append(log_path)
        return child

    @property
    def pids(self) -> list[int]:
        return [child.pid for child in self.children]

    def log_tail(self, index: int, lines: int = 15) -> list[str]:
        try:
            text = self.logs[index].read_text(errors="replace")
        except OSError:
            return []
        return text.strip().splitlines()[-lines:]

    def failure(self, index: int, what: str) -> str:
        details = "\n  ".join(self.log_tail(index))
        child = self.children[index]
        return f"{self.names[index]} (pid {child.pid}) failed: {what}" + (
            f"\n  {details}" if details else ""
        )

    def check_alive(self) -> None:
        """Raise WorkerFailed naming the first worker that exited, with its log."""
        for index, child in enumerate(self.children):
            code = child.poll()
            if code is not None:
                raise WorkerFailed(self.failure(index, f"it exited with code {code}"))

    def stop(self, polite: Callable[[Child], None] | None = None, grace: float = 20.0) -> None:
        # A second Ctrl-C while stopping must not leave workers behind (signal
        # handlers can be changed only on the main thread).
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        try:
            stop_children(self.children, polite, grace)
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)
            for child in self.children:
                for stream in (child.stdin, child.stdout):
                    if stream is not None:
                        _close(stream)

    def __enter__(self) -> Workers:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _close(stream: IO[bytes]) -> None:
    try:
        stream.close()
    except OSError:
        pass
