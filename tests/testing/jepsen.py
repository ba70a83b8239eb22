"""Readers for the labelled Jepsen histories in porcupine's test_data (not in this
repository: tests find them through LINCHECK_PORCUPINE_DATA).

Times are line numbers. An `:info` (timed-out) write or cas has an unknown outcome;
a `:fail` read timed out and is dropped; a `:fail` cas is a definite "compare did not
match"; an invocation never answered by the end is unknown.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from nodehost.testing import UNKNOWN, Operation

# etcd_NNN.log files whose history is linearizable; the other 79 are not.
ETCD_LINEARIZABLE = frozenset(
    {2, 5, 7, 18, 25, 31, 38, 45, 48, 49, 51, 53, 56, 67, 75, 76, 80, 87, 92, 98, 100, 101, 102}
)
ETCD_LOGS = [i for i in range(103) if i != 95]  # the cluster never started in run 95

_ETCD = re.compile(
    r"^INFO\s+jepsen\.util\s+-\s+(\d+)\s+:(invoke|ok|fail|info)\s+:(read|write|cas)\s+(.*?)\s*$"
)
_KV = re.compile(
    r"^\{:process (\d+), :type :(invoke|ok|fail|info), :f :(get|put|append), "
    r':key "(.*?)", :value (nil|"(.*)")\}$'
)


class _Builder:
    def __init__(self) -> None:
        self.pending: dict[int, Operation] = {}
        self.ops: list[Operation] = []

    def invoke(self, process: int, t: int, inp: tuple[Any, ...]) -> None:
        assert process not in self.pending, f"process {process} invoked twice"
        self.pending[process] = Operation(process, inp, t, UNKNOWN, math.inf)

    def ok(self, process: int, t: int, output: Any) -> None:
        op = self.pending.pop(process)
        op.output, op.return_time = output, t
        self.ops.append(op)

    def drop(self, process: int) -> None:
        self.pending.pop(process)

    def unknown(self, process: int) -> None:
        self.ops.append(self.pending.pop(process))

    def history(self) -> list[Operation]:
        return sorted(self.ops + list(self.pending.values()), key=lambda o: o.call)


def read_etcd_log(path: Path) -> list[Operation]:
    """A register history (read / write / cas of small integers, nil read as None)."""
    b = _Builder()
    for t, line in enumerate(path.read_text().splitlines()):
        m = _ETCD.match(line)
        if m is None:
            continue
        process, kind, f, arg = int(m[1]), m[2], m[3], m[4]
        if kind == "invoke":
            if f == "read":
                b.invoke(process, t, ("read",))
            elif f == "write":
                b.invoke(process, t, ("write", int(arg)))
            else:
                old, new = arg.strip("[]").split()
                b.invoke(process, t, ("cas", int(old), int(new)))
        elif kind == "ok":
            if f == "read":
                b.ok(process, t, None if arg == "nil" else int(arg))
            else:
                b.ok(process, t, True if f == "cas" else None)
        elif kind == "fail":
            if f == "cas":
                b.ok(process, t, False)
            else:
                b.drop(process)  # a read that timed out
        else:
            b.unknown(process)
    return b.history()


def read_kv_log(path: Path) -> list[Operation]:
    """A map history (get / put / append of strings); "" read means absent (None)."""
    b = _Builder()
    for t, line in enumerate(path.read_text().splitlines()):
        m = _KV.match(line)
        if m is None:
            continue
        process, kind, f, key, value = int(m[1]), m[2], m[3], m[4], m[6]
        if kind == "invoke":
            b.invoke(process, t, ("get", key) if f == "get" else (f, key, value))
        elif kind == "ok":
            b.ok(process, t, (value or None) if f == "get" else None)
        elif kind == "fail":
            b.drop(process)
        else:
            b.unknown(process)
    return b.history()
