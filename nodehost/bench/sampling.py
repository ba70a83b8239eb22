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
import threading
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
        return {pid: 100.0 * spent / wall for pid, spent in self.seconds().items()}

    def seconds(self) -> dict[int, float]:
        """CPU seconds per PID since the window opened (a process gone since counts
        what it had used when last read)."""
        out: dict[int, float] = {}
        for pid, first in self._start.items():
            process = self._processes.get(pid)
            if process is not None:
                try:
                    self._last[pid] = _cpu_seconds(process)
                except psutil.Error:
                    pass
            out[pid] = self._last[pid] - first
        return out


class Watch:
    """CPU and peak RSS of processes that may exit before the window closes.

    A background thread reads each PID every `interval` seconds; a process's figures
    are the last ones read, so one that exits (and is reaped) early still reports
    what it used up to its last sample. Peak RSS is the kernel's high-water mark, so
    a sample taken after the peak still sees it.
    """

    def __init__(self, pids: Iterable[int], interval: float = 0.2) -> None:
        self._pids = list(pids)
        self._interval = interval
        self._first: dict[int, float] = {}
        self._cpu: dict[int, float] = {}
        self._peak: dict[int, float] = {}
        self._processes: dict[int, psutil.Process] = {}
        for pid in self._pids:
            try:
                self._processes[pid] = psutil.Process(pid)
            except psutil.Error:
                pass
        self._sample()
        self._first = dict(self._cpu)
        self._started = time.monotonic()
        self._ended = self._started
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-watch", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        for pid, process in self._processes.items():
            try:
                self._cpu[pid] = _cpu_seconds(process)
            except psutil.Error:
                continue
            peak = peak_rss_mib(pid)
            if not math.isnan(peak):
                self._peak[pid] = max(peak, self._peak.get(pid, 0.0))

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def stop(self) -> dict[int, tuple[float, float]]:
        """{pid: (percent of one core over the window, peak RSS MiB)}; NaN if never read."""
        self._stop.set()
        self._thread.join(10.0)
        self._sample()
        wall = max(time.monotonic() - self._started, 1e-9)
        out: dict[int, tuple[float, float]] = {}
        for pid in self._pids:
            if pid in self._cpu and pid in self._first:
                cpu = 100.0 * (self._cpu[pid] - self._first[pid]) / wall
            else:
                cpu = math.nan
            out[pid] = (cpu, self._peak.get(pid, math.nan))
        return out
