"""Admission by queueing delay: refuse new requests while a standing queue holds them up.

A bound on the number of pending requests protects memory, but the delay it allows
is that number divided by the rate the shard completes requests, which no fixed
number can know: on a slow or busy host the count is never reached, requests wait
until their callers time out, and the shard spends its time on work nobody waits for.

Rules (the idea is CoDel's, Nichols and Jacobson, 2012):
- Every request that finishes (applied, or a read released) reports how long it took.
  The smallest of those in a window of `target / 2` seconds tells whether a queue
  stands: if even the fastest waited longer than `target`, the next window refuses
  every new request (the caller gets SystemBusy at once, nothing was done) while the
  queue drains; a window in which nothing finished refuses nothing.
- Requests that never finish (timed out, dropped, lost with a leader) report nothing,
  so they cannot hold a replica shut.
- Windows roll lazily, on the next request or report: no timer, no thread.
- Thread-safe: user threads ask, apply workers report.
"""

from __future__ import annotations

import math
import threading


class DelayGate:
    __slots__ = ("_lock", "_min", "_reported", "_window_end", "shut", "target", "window")

    def __init__(self, target: float) -> None:
        if not target > 0:
            raise ValueError(f"the delay target must be positive, got {target}")
        self.target = target
        self.window = target / 2
        self._lock = threading.Lock()
        self._window_end = 0.0
        self._min = math.inf
        self._reported = 0
        self.shut = False

    def admit(self, now: float) -> bool:
        """True when a request arriving at `now` may be queued."""
        if now >= self._window_end:
            self._roll(now)
        return not self.shut

    def finished(self, delay: float, now: float) -> None:
        """A request finished after waiting `delay` seconds."""
        with self._lock:
            if now >= self._window_end:
                self._roll_locked(now)
            self._reported += 1
            if delay < self._min:
                self._min = delay

    def _roll(self, now: float) -> None:
        with self._lock:
            if now >= self._window_end:
                self._roll_locked(now)

    def _roll_locked(self, now: float) -> None:
        self.shut = self._reported > 0 and self._min > self.target
        self._reported = 0
        self._min = math.inf
        self._window_end = now + self.window
