"""A circuit breaker per remote address: exponential back-off with jitter.

After a failure the address is "open" (no traffic, senders fail fast) until the back-off
ends; the next connection attempt then decides (success closes it, failure doubles the
back-off up to a cap). Jitter spreads the retries of many NodeHosts that lost the same
peer, so a restarted peer is not hit by all of them at once.
"""

from __future__ import annotations

import random


class Breaker:
    def __init__(self, base: float, cap: float, rng: random.Random) -> None:
        self._base = base
        self._cap = cap
        self._rng = rng
        self.failures = 0  # consecutive

    def failure(self) -> float:
        """Record a failure; return how long to stay open (seconds)."""
        self.failures += 1
        ceiling = min(self._cap, self._base * 2.0 ** min(self.failures - 1, 32))
        # "Equal jitter": at least half the back-off, so it still grows.
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def success(self) -> None:
        self.failures = 0
