"""Network faults injected inside a transport, for tests: cut, drop, delay, duplicate.

Rules:
- A cut (src, dst) stops everything from `src` to `dst`: batches and snapshots. Both
  ends enforce it: the sender before queueing (to the target's address), the receiver on
  arrival (by the batch's claimed source). So a hook set in one process can cut that
  process's links in each direction independently: `cut(me, peer)` stops what it sends,
  `cut(peer, me)` what it accepts, and both together isolate it from `peer`.
- Random faults (drop, duplicate, delay, which reorders) apply per message on the
  sending side only, drawn from a seeded `random.Random` so a failing run replays.
- Safe to change from any thread while the transport runs: every setter replaces an
  immutable value, so the loop never sees a half-made change.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable


class FaultHook:
    def __init__(
        self,
        seed: int = 0,
        *,
        drop: float = 0.0,
        duplicate: float = 0.0,
        delay: tuple[float, float] = (0.0, 0.0),
        delay_rate: float = 0.0,
    ) -> None:
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self._cuts: frozenset[tuple[str, str]] = frozenset()
        self._lock = threading.Lock()
        self.set_random(drop=drop, duplicate=duplicate, delay=delay, delay_rate=delay_rate)

    def set_random(
        self,
        *,
        drop: float = 0.0,
        duplicate: float = 0.0,
        delay: tuple[float, float] = (0.0, 0.0),
        delay_rate: float = 0.0,
    ) -> None:
        """Per message: lose it with p=`drop`, send it twice with p=`duplicate`, and
        hold each copy for uniform(*delay) seconds with p=`delay_rate`."""
        for name, p in (("drop", drop), ("duplicate", duplicate), ("delay_rate", delay_rate)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be a probability, not {p}")
        if not 0.0 <= delay[0] <= delay[1]:
            raise ValueError(f"delay must be (low, high) with 0 <= low <= high, not {delay}")
        self._random = (drop, duplicate, delay, delay_rate)

    # ------------------------------------------------------------------ cuts

    def cut(self, src: str, dst: str) -> None:
        """Stop traffic from `src` to `dst` (one direction)."""
        with self._lock:
            self._cuts = self._cuts | {(src, dst)}

    def partition(self, side_a: Iterable[str], side_b: Iterable[str]) -> None:
        """Cut both directions between every address of `side_a` and of `side_b`."""
        a, b = list(side_a), list(side_b)
        with self._lock:
            pairs = {(x, y) for x in a for y in b} | {(y, x) for x in a for y in b}
            self._cuts = self._cuts | pairs

    def heal(self, src: str | None = None, dst: str | None = None) -> None:
        """Remove cuts matching `src` and `dst` (None matches any); no argument: all."""
        with self._lock:
            self._cuts = frozenset(
                (s, d)
                for s, d in self._cuts
                if not ((src is None or s == src) and (dst is None or d == dst))
            )

    def blocks(self, src: str, dst: str) -> bool:
        return (src, dst) in self._cuts

    @property
    def cuts(self) -> frozenset[tuple[str, str]]:
        return self._cuts

    # ------------------------------------------------------------------ per message

    def plan(self, src: str, dst: str) -> list[float]:
        """Delays (seconds) of the copies of one message to send: [] drops it, [0.0] is
        the normal case, two values duplicate it."""
        if (src, dst) in self._cuts:
            return []
        drop, duplicate, (low, high), delay_rate = self._random
        if not (drop or duplicate or delay_rate):
            return [0.0]
        with self._rng_lock:
            rng = self._rng
            if drop and rng.random() < drop:
                return []
            copies = 2 if duplicate and rng.random() < duplicate else 1
            return [
                rng.uniform(low, high) if delay_rate and rng.random() < delay_rate else 0.0
                for _ in range(copies)
            ]
