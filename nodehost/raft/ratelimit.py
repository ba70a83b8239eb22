"""Rate limiting by the size of the in-memory log (dragonboat's MaxInMemLogSize).

Rules:
- Enabled when `max_bytes` > 0. The size that counts is the largest of the memory
  this replica's in-memory, not yet applied entries hold (pacing.py sizes it) and, on
  a leader, the sizes its followers reported within the last `3 * period` ticks: a
  slow follower limits the shard.
- Limited once that size passes max_bytes; released only below 70% of it, and the
  state changes at most once per `period` ticks, so proposals do not flap.
- A follower also honours the leader's verdict (sent back in RATE_LIMIT), so a
  proposal made anywhere is refused with the same clear code.
- Time is ticks, given by the caller; nothing here reads a clock.
"""

from __future__ import annotations

RELEASE_RATIO = 0.7
STALE_PERIODS = 3


class RateLimiter:
    __slots__ = (
        "_changed_at",
        "_follower_sizes",
        "_leader_limited_at",
        "_limited",
        "last_report",
        "max_bytes",
        "period",
        "tick_count",
    )

    def __init__(self, max_bytes: int, period: int) -> None:
        self.max_bytes = max_bytes
        self.period = max(period, 1)
        self.tick_count = 0
        self._limited = False
        self._changed_at = -self.period
        self._follower_sizes: dict[int, tuple[int, int]] = {}
        self._leader_limited_at = -1
        self.last_report = 0  # the size this follower last reported to its leader

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def tick(self) -> bool:
        """Advance one tick; True when it is time for a follower to report."""
        self.tick_count += 1
        return self.tick_count % self.period == 0

    def follower_size(self, replica_id: int, size: int) -> None:
        self._follower_sizes[replica_id] = (size, self.tick_count)

    def leader_verdict(self, limited: bool) -> None:
        self._leader_limited_at = self.tick_count if limited else -1

    def reset(self) -> None:
        """Leadership changed: reports and verdicts about the old one are void."""
        self._follower_sizes.clear()
        self._leader_limited_at = -1
        self.last_report = -1  # the new leader hears our size at the next report

    def limited(self, own_size: int) -> bool:
        if self.max_bytes <= 0:
            return False
        now = self.tick_count
        horizon = now - STALE_PERIODS * self.period
        size = own_size
        for replica_id, (reported, at) in list(self._follower_sizes.items()):
            if at < horizon:
                del self._follower_sizes[replica_id]
            elif reported > size:
                size = reported
        if self._limited:
            want = size >= self.max_bytes * RELEASE_RATIO
        else:
            want = size > self.max_bytes
        if want != self._limited and now - self._changed_at >= self.period:
            self._limited = want
            self._changed_at = now
        leader_says = self._leader_limited_at >= 0 and self._leader_limited_at >= horizon
        return self._limited or leader_says
