"""A program in a pseudo-terminal, typed into and read as a person would.

Our own small pexpect (pexpect itself would be one more dependency for the hundred
lines needed here, and the screen must be cleaned up anyway): a child gets a pty as its
controlling terminal (so prompt_toolkit runs exactly as in a real one), a thread reads
everything it prints, answers the queries a real terminal answers (cursor position),
and keeps the text with the escape sequences removed, so tests match what a person
would see.

Rules:
- Every wait is bounded; a failed wait raises AssertionError with the recent screen.
- The child is stopped by its PID (SIGKILL if it outlives `close`), never by name.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import signal
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Mapping, Sequence

# CSI (colours, cursor moves, erase), OSC (titles) and the other escape sequences.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"
    r"|\x1b[()][0-9A-Za-z]"
    r"|\x1b[@-Z\\-_=>]"
)
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_CURSOR_POSITION_REQUEST = b"\x1b[6n"
ENTER = "\r"
CTRL_C = "\x03"
CTRL_D = "\x04"


_BLANK_LINES = re.compile(r"\n[ \t]*(?=\n)")
# prompt_toolkit turns bracketed paste on while a prompt reads a line, off after it.
_PROMPT_ON = b"\x1b[?2004h"
_PROMPT_OFF = b"\x1b[?2004l"


def screen_text(raw: bytes) -> str:
    """What the output reads as: escapes removed, each carriage return a line break,
    blank lines (space the prompt reserves below itself) dropped."""
    text = _ESCAPES.sub("", raw.decode("utf-8", errors="replace"))
    text = _CONTROLS.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return _BLANK_LINES.sub("", text)


def _become_controlling_terminal() -> None:
    # Runs in the child after setsid() (start_new_session): stdin is the pty's slave end.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    def __init__(
        self,
        argv: Sequence[str],
        cwd: str,
        env: Mapping[str, str],
        rows: int = 50,
        columns: int = 250,
    ) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        try:
            self.process = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=dict(env),
                stdin=slave,
                stdout=slave,
                stderr=slave,
                start_new_session=True,
                preexec_fn=_become_controlling_terminal,
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        self.argv = list(argv)
        self._master = master
        self._raw = bytearray()
        self._text = ""
        self._mark = 0
        self._eof = False
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, name="pty-reader", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def text(self) -> str:
        with self._changed:
            return self._text

    def type(self, line: str) -> None:
        """Type a line and press Enter."""
        self.press(line + ENTER)

    def press(self, keys: str) -> None:
        os.write(self._master, keys.encode())

    def mark(self) -> int:
        """A position in the text: `expect(..., since=mark)` looks only after it."""
        with self._changed:
            return len(self._text)

    def expect(self, pattern: str, timeout: float, since: int | None = None) -> re.Match[str]:
        """Wait for `pattern` in what was printed after `since` (default: after the
        previous match) and move past it."""
        regex = re.compile(pattern, re.MULTILINE)
        deadline = time.monotonic() + timeout
        with self._changed:
            start = self._mark if since is None else since
            while True:
                match = regex.search(self._text, start)
                if match is not None:
                    self._mark = match.end()
                    return match
                left = deadline - time.monotonic()
                if left <= 0 or self._eof:
                    break
                self._changed.wait(min(left, 0.5))
        raise AssertionError(
            f"{self.argv[-4:]} did not print {pattern!r} within {timeout:.0f} s"
            f"{' (its output ended)' if self._eof else ''}; it printed:\n{self.tail()}"
        )

    def wait_for_prompt(self, timeout: float) -> None:
        """Wait until a prompt is reading a line, as a person waits to see `>`."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._raw.rfind(_PROMPT_ON) <= self._raw.rfind(_PROMPT_OFF):
                left = deadline - time.monotonic()
                if left <= 0 or self._eof:
                    raise AssertionError(
                        f"{self.argv[-4:]} shows no prompt after {timeout:.0f} s; "
                        f"it printed:\n{self.tail()}"
                    )
                self._changed.wait(min(left, 0.5))

    def tail(self, chars: int = 3000) -> str:
        return self.text[-chars:]

    def wait(self, timeout: float) -> int:
        """The exit code, once the program ended by itself within `timeout`."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{self.argv[-4:]} still runs after {timeout:.0f} s; it printed:\n{self.tail()}"
            ) from None

    def signal(self, signum: signal.Signals) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signum)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the program (SIGKILL by PID if it still runs) and release the terminal."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout)
        self._reader.join(timeout)
        if self._master >= 0:
            os.close(self._master)
            self._master = -1

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self._master, 65536)
            except OSError:  # EIO: every holder of the slave end is gone
                data = b""
            if not data:
                break
            for _ in range(data.count(_CURSOR_POSITION_REQUEST)):
                os.write(self._master, b"\x1b[1;1R")  # as a terminal would: "row 1, col 1"
            with self._changed:
                self._raw += data
                self._text = screen_text(bytes(self._raw))
                self._changed.notify_all()
        with self._changed:
            self._eof = True
            self._changed.notify_all()
