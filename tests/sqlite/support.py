"""Helpers for the SQL tests: free port pairs (client port and its Raft port) and waits."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from nodehost.bench import free_port_pairs
from nodehost.sqlite.app import RAFT_PORT_OFFSET

T = TypeVar("T")


def free_addresses(count: int) -> list[str]:
    """Client addresses whose port and port + RAFT_PORT_OFFSET are both free now."""
    return [f"127.0.0.1:{port}" for port in free_port_pairs(count, RAFT_PORT_OFFSET)]


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
