"""What every benchmark report carries: the machine, latencies, tables and ratios.

Rules: a latency figure is in milliseconds; a ratio is ours over theirs for rates and
theirs over ours for latencies, so above 1 always means the library is ahead; a
missing figure prints as "-", never as 0.
"""

from __future__ import annotations

import math
import os
import platform
import sys
from collections.abc import Sequence
from typing import Any

from nodehost.bench.histogram import Histogram


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        # Other programs' load when the run started: the machine may be shared.
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def machine_line(m: dict[str, Any]) -> str:
    return (
        f"machine: {m['cpus']} cores, Python {m['python']}, {m['platform']}, "
        f"load average before the run {' '.join(f'{x:g}' for x in m['load_average'])}"
    )


def latencies(h: Histogram) -> dict[str, float]:
    return {
        "p50": h.percentile_ms(0.5),
        "p99": h.percentile_ms(0.99),
        "p99.9": h.percentile_ms(0.999),
        "max": h.max_us / 1000.0,
        "count": h.total,
    }


def rate_ratio(ours: float | None, theirs: float | None) -> float | None:
    """Ours over theirs: above 1, the library is ahead."""
    if ours is None or theirs is None or theirs <= 0 or math.isnan(ours) or math.isnan(theirs):
        return None
    return ours / theirs


def latency_ratio(ours: float | None, theirs: float | None) -> float | None:
    """Theirs over ours (a shorter latency is better): above 1, the library is ahead."""
    if ours is None or theirs is None or ours <= 0 or math.isnan(ours) or math.isnan(theirs):
        return None
    return theirs / ours


def ratio_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned first column, the others right-aligned, two spaces apart."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [cell.rjust(widths[i + 1]) for i, cell in enumerate(cells[1:])]
        return "  ".join([first, *rest]).rstrip()

    return [line(headers), *(line(row) for row in rows)]
