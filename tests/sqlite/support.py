"""Helpers for the SQL tests: free port pairs (client port and its Raft port) and waits."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TypeVar

from nodehost.sqlite.app import RAFT_PORT_OFFSET

T = TypeVar("T")


def free_addresses(count: int) -> list[str]:
    """Client addresses whose port and port + RAFT_PORT_OFFSET are both free now."""
    found: list[str] = []
    held: list[socket.socket] = []
    try:
        while len(found) < count:
            first = socket.socket()
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            if port + RAFT_PORT_OFFSET >= 65536:
                first.close()
                continue
            second = socket.socket()
            try:
                second.bind(("127.0.0.1", port + RAFT_PORT_OFFSET))
            except OSError:
                first.close()
                second.close()
                continue
            held += [first, second]
            found.append(f"127.0.0.1:{port}")
    finally:
        for s in held:
            s.close()
    return found


def wait_for(condition: Callable[[], T], timeout: float = 20.0, what: str = "") -> T:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except Exception:
            if time.monotonic() > deadline:
                raise
            value = None  # type: ignore[assignment]
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.02)
