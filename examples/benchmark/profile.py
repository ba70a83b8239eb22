"""`example-benchmark --profile DIR`: py-spy on every worker during the measured window.

Each worker is sampled by `py-spy record --gil` (from outside, without pausing the
process: --nonblocking) for the window's length: a sample is taken only of the thread
that holds the GIL, so it shows where the process's Python time goes (a thread waiting
in C, in epoll, a queue or an fsync, is not sampled; C code that releases the GIL is not
counted either). The raw stacks go to DIR, one file per process, and the report gets,
per process: the share of the window each thread held the GIL, and the functions with
the most samples of their own (self time) and in total (inclusive).

Rules: py-spy is a dev dependency (`uv sync` installs it); without it, or when the
system refuses it access to the workers (ptrace), the run goes on and the report says
why there is no profile. Every py-spy process is stopped by its PID with the run.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from nodehost.bench import Workers

RATE = 250  # samples per second
TOP = 15
_LINE = re.compile(r"^thread \((\d+)\): ([^;]*)(?:;(.*))? (\d+)$")
_FRAME_LINE = re.compile(r" \(([^():]*):\d+\)$")


@dataclass
class ProcessProfile:
    pid: int
    seconds: float
    samples: int = 0
    threads: Counter[str] = field(default_factory=Counter)
    own: Counter[str] = field(default_factory=Counter)
    inclusive: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> dict[str, object]:
        possible = max(self.seconds * RATE, 1.0)
        return {
            "pid": self.pid,
            "samples": self.samples,
            "threads_gil_share": {t: round(n / possible, 3) for t, n in self.threads.most_common()},
            "self": [(f, round(n / self.samples, 4)) for f, n in self.own.most_common(TOP)],
            "inclusive": [
                (f, round(n / self.samples, 4)) for f, n in self.inclusive.most_common(TOP)
            ],
        }


def _function(frame: str) -> str:
    """'name (path/file.py:123)' -> 'name (file.py)': lines of one function together."""
    match = _FRAME_LINE.search(frame)
    if match is None:
        return frame
    return f"{frame[: match.start()]} ({Path(match.group(1)).name})"


def read(path: Path, pid: int, seconds: float) -> ProcessProfile:
    profile = ProcessProfile(pid, seconds)
    for line in path.read_text(errors="replace").splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        _, thread, stack, count_text = match.groups()
        count = int(count_text)
        thread = re.sub(r"[-_]?\d+$", "", thread) or thread  # apply-0, apply-1: one row
        profile.samples += count
        profile.threads[thread] += count
        frames = [_function(f) for f in stack.split(";")] if stack else [f"<{thread}>"]
        profile.own[frames[-1]] += count
        for name in set(frames):
            profile.inclusive[name] += count
    return profile


class Profiler:
    """py-spy on each PID for `seconds`; `finish` waits and reads what they wrote."""

    def __init__(self, directory: Path, pids: list[int], seconds: float) -> None:
        self.directory = directory
        self.pids = pids
        self.seconds = seconds
        self.error = ""
        self._workers: Workers | None = None
        binary = shutil.which("py-spy")
        if binary is None:
            self.error = "py-spy is not installed (uv sync installs the dev dependencies)"
            return
        directory.mkdir(parents=True, exist_ok=True)
        self._workers = Workers(directory)
        for pid in pids:
            self._workers.start(
                f"py-spy-{pid}",
                [
                    binary,
                    "record",
                    "--format",
                    "raw",
                    "--threads",
                    "--gil",
                    "--nonblocking",
                    "--rate",
                    str(RATE),
                    "--duration",
                    str(max(1, round(seconds))),
                    "--pid",
                    str(pid),
                    "--output",
                    str(directory / f"{pid}.txt"),
                ],
            )

    def finish(self) -> list[dict[str, object]] | str:
        """The profiles, or why there are none."""
        if self._workers is None:
            return self.error
        try:
            for child in self._workers.children:
                try:
                    child.wait(timeout=self.seconds + 30)
                except subprocess.TimeoutExpired:
                    pass
        finally:
            self._workers.stop()
        out: list[dict[str, object]] = []
        for index, pid in enumerate(self.pids):
            path = self.directory / f"{pid}.txt"
            if not path.is_file():
                tail = " ".join(self._workers.log_tail(index, 3))
                return f"py-spy wrote no profile for pid {pid}: {tail}"
            out.append(read(path, pid, self.seconds).to_json())
        return out


def text(profiles: list[dict[str, object]] | str) -> list[str]:
    if isinstance(profiles, str):
        return [f"profile: none ({profiles})"]
    lines = [f"profile (py-spy --gil, {RATE} samples/s of the thread holding the GIL):"]
    for profile in profiles:
        threads = profile["threads_gil_share"]
        assert isinstance(threads, dict)
        shares = ", ".join(f"{t} {100 * s:.0f}%" for t, s in threads.items())
        lines.append(f"  pid {profile['pid']}: GIL held, by thread (% of the window): {shares}")
        for kind in ("self", "inclusive"):
            rows = profile[kind]
            assert isinstance(rows, list)
            lines.append(f"    top {kind} (share of the process's samples):")
            lines += [f"      {100 * share:5.1f}%  {name}" for name, share in rows]
    return lines
