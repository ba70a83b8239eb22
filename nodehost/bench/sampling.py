"""CPU and memory of benchmark processes, ours or another program's (etcd, dqlite).

- CPU is user + system time over a window, in percent of one core (a 2-core machine
  gives 200% in all), from psutil's cpu_times at both ends of the window.
- Peak RSS of a running process is the kernel's high-water mark (VmHWM on Linux);
  where that is not available, the current RSS stands in. Our own peak is ru_maxrss.
- A process that exited during the window counts what was last seen of it; a figure
  that could not be read is NaN, never a guess.
"""

from __future__ import annotations

import math
import resource
import sys
import time
from collections.abc import Iterable

import psutil

MiB = 2**20


def rss_mib(pid: int) -> float:
    try:
        return float(psutil.Process(pid).memory_info().rss) / MiB
    except psutil.Error:
        return math.nan


def peak_rss_mib(pid: int) -> float:
    if sys.platform.startswith("linux"):
        try:
            with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024 / MiB
        except OSError:
            return math.nan
    return rss_mib(pid)


def own_peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    return peak / MiB if sys.platform == "darwin" else peak / 1024


def own_cpu_seconds() -> float:
    times = psutil.Process().cpu_times()
    return float(times.user + times.system)


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


class CpuWindow:
    """CPU of several processes between `start` (at construction) and `stop`."""

    def __init__(self, pids: Iterable[int]) -> None:
        self._processes: dict[int, psutil.Process] = {}
        self._start: dict[int, float] = {}
        self._last: dict[int, float] = {}
        for pid in pids:
            try:
                process = psutil.Process(pid)
                self._start[pid] = self._last[pid] = _cpu_seconds(process)
                self._processes[pid] = process
            except psutil.Error:
                self._start[pid] = self._last[pid] = math.nan
        self._started = time.monotonic()

    def stop(self) -> dict[int, float]:
        """Percent of one core per PID since the window opened."""
        wall = max(time.monotonic() - self._started, 1e-9)
        out: dict[int, float] = {}
        for pid, first in self._start.items():
            process = self._processes.get(pid)
            if process is not None:
                try:
                    self._last[pid] = _cpu_seconds(process)
                except psutil.Error:
                    pass
            out[pid] = 100.0 * (self._last[pid] - first) / wall
        return out
