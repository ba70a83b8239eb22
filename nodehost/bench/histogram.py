"""A log-bucket latency histogram (HDR style): bounded memory, mergeable, exact enough.

Rules:
- A latency lands in bucket floor(log2(microseconds) * SUB_BUCKETS); with 64 buckets per
  doubling a bucket is 1.1% wide, so a reported percentile is within 1.1% of the true
  sample, however many samples there are (a reservoir would lose the tail at p99.9).
- A percentile is the upper edge of the bucket holding that rank, so it never reports
  a latency lower than the sample it stands for.
- Histograms travel between processes as {bucket: count} and add up by bucket.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

SUB_BUCKETS = 64
_MIN_US = 1.0  # everything under 1 us shares the first bucket


@dataclass
class Histogram:
    counts: dict[int, int] = field(default_factory=dict)
    total: int = 0
    max_us: float = 0.0

    def record(self, seconds: float) -> None:
        us = seconds * 1e6
        bucket = int(math.log2(max(us, _MIN_US)) * SUB_BUCKETS)
        self.counts[bucket] = self.counts.get(bucket, 0) + 1
        self.total += 1
        if us > self.max_us:
            self.max_us = us

    def merge(self, other: Histogram) -> None:
        for bucket, count in other.counts.items():
            self.counts[bucket] = self.counts.get(bucket, 0) + count
        self.total += other.total
        self.max_us = max(self.max_us, other.max_us)

    def percentile_ms(self, fraction: float) -> float:
        """The latency (ms) at or under which `fraction` of the samples fall; 0 if none."""
        if self.total == 0:
            return 0.0
        rank = max(1, math.ceil(fraction * self.total))
        seen = 0
        for bucket in sorted(self.counts):
            seen += self.counts[bucket]
            if seen >= rank:
                upper_us: float = 2.0 ** ((bucket + 1) / SUB_BUCKETS)
                return min(upper_us, self.max_us) / 1000.0
        return self.max_us / 1000.0

    def to_json(self) -> dict[str, object]:
        return {
            "counts": {str(b): c for b, c in self.counts.items()},
            "total": self.total,
            "max_us": self.max_us,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Histogram:
        counts = data["counts"]
        assert isinstance(counts, dict)
        total, max_us = data["total"], data["max_us"]
        assert isinstance(total, int) and isinstance(max_us, int | float)
        return cls({int(b): int(c) for b, c in counts.items()}, total, float(max_us))
