"""Admission by expected wait: refuse a request that would wait longer than a target.

A bound on the number of pending requests protects memory, but the wait it allows is
that number divided by the rate the replica finishes requests, which no fixed number
can know: on a slow or busy host the count is never reached, requests wait until their
callers time out, and the shard spends its time on work nobody waits for any more.

Rules:
- A new request would wait about `pending / rate` (Little's law), where `rate` is how
  many requests of this kind finished on this replica per second, measured over
  windows as long as the target (from the window's start to its last finish, so that
  an idle spell after them does not count). Not shorter: a busy engine finishes
  requests in bursts, a pass at a time, and a short window that caught one burst would
  take the rate for several times what it is. Past `target` seconds it is refused at once
  (the caller gets SystemBusy, nothing was done). A few (FLOOR) are always taken, so a
  replica whose rate is low, or not yet known, still works.
- While requests stayed pending since the previous window's last finish, the span
  measured starts there, not at the window's start: a state machine that takes longer
  than a window to apply one batch finishes it all at once, and only the time since the
  batch before tells its rate. Once the queue was seen empty, the span starts with the
  window again (the idle time before does not count).
- The rate follows the last window in which requests finished. A window in which none
  finished while some were pending (the shard stalled) halves it; a window with none
  pending keeps it (an idle replica has not become slower).
- Requests that never finish (timed out, dropped) report nothing; while pending they
  count like the others, at most until their timeout.
- Windows roll lazily, on the next request or report: no timer, no thread.
- Thread-safe: user threads ask, apply workers report; the figures are read without
  the lock (a stale one admits or refuses one request more).
"""

from __future__ import annotations

import threading

FLOOR = 64


class DelayGate:
    __slots__ = (
        "_emptied",
        "_finished",
        "_last",
        "_lock",
        "_previous_last",
        "_window_end",
        "_window_start",
        "rate",
        "target",
        "window",
    )

    def __init__(self, target: float) -> None:
        if not target > 0:
            raise ValueError(f"the wait target must be positive, got {target}")
        self.target = target
        self.window = target
        self._lock = threading.Lock()
        self._window_start = 0.0
        self._window_end = 0.0
        self._finished = 0
        self._last = 0.0  # when the window's last request finished
        self._previous_last = 0.0  # when the last window with finishes had its last
        self._emptied = True  # the queue was seen empty since _previous_last
        self.rate = 0.0  # requests finished per second; 0: not known yet

    def admit(self, now: float, pending: int) -> bool:
        """True when a request arriving at `now` behind `pending` may be queued."""
        if now >= self._window_end:
            with self._lock:
                if now >= self._window_end:
                    self._roll_locked(now, pending)
        if not pending:
            self._emptied = True
        if pending < FLOOR or self.rate <= 0.0:
            return True
        return pending < self.rate * self.target

    def finished(self, now: float, pending: int) -> None:
        """A request finished at `now`; `pending` are left."""
        with self._lock:
            if now >= self._window_end:
                self._roll_locked(now, pending)
            self._finished += 1
            self._last = now
            if not pending:
                self._emptied = True

    def expected_wait(self, pending: int) -> float:
        return pending / self.rate if self.rate > 0 else 0.0

    def _roll_locked(self, now: float, pending: int) -> None:
        if self._finished:
            # Over the time they took, not the idle time after them (windows roll late).
            start = self._window_start
            if self._previous_last and not self._emptied:
                start = min(start, self._previous_last)
            self.rate = self._finished / max(self._last - start, self.window)
            self._previous_last = self._last
            self._emptied = not pending
        elif pending:
            self.rate /= 2
        else:
            self._emptied = True
        self._finished = 0
        self._window_start = now
        self._window_end = now + self.window
