"""Linearizability of an append-only list with unique elements, decided without search.

Histories use the list model's operations (models.py): ("append", x) and ("read",)
answering the whole list, oldest element first. Each element is appended by one
operation at most; a history that appends one twice is refused (ValueError), since
the rules below need to know which append wrote what a read shows.

The search (lincheck.py) would try each subset and order of the timed-out appends, a
number of states that grows exponentially with them. Unique elements make that
unnecessary. Let S be the longest answer of any read, and let a ≺ b mean that a
returned before b was invoked (intervals are closed: touching counts as concurrent).
The history is linearizable exactly when:
1. every read answers a prefix of S; S holds no element twice and none that no append
   wrote;
2. a ≺ b between appends, b in S: a is in S, before b;
3. an append ≺ a read: the read shows its element;
4. a read ≺ an append: the read does not show its element;
5. a read ≺ another read: the later one shows at least as many elements.
Each rule holds in every linearization. Conversely, when all hold, this order is one:
S's appends in S's order, then the other acknowledged appends by call time (timed-out
ones not in S are left out: they never took effect), each read placed after the last
element it shows (reads showing as many by call time). So the verdict is always OK or
ILLEGAL, in O(n log n), never UNKNOWN.
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Iterable, Sequence
from typing import Any

from nodehost.testing.history import Operation, validate
from nodehost.testing.lincheck import CheckResult, PartitionResult, Verdict
from nodehost.testing.models import ListAppendModel, normalize_list_history

_DESCRIBE = ListAppendModel().describe_operation

# A broken rule: (the operation it was found at, the explanation, the operations).
_Failure = tuple[Operation, str, list[Operation]]


def check_list_append(history: Iterable[Operation]) -> CheckResult:
    """Decide whether a list-append history is linearizable (rules in the module doc).
    Raises ValueError for a malformed history or an element appended twice."""
    started = time.monotonic()
    ops = list(history)
    validate(ops)
    ops = normalize_list_history(ops)
    appends = [o for o in ops if o.input[0] == "append"]
    reads = [o for o in ops if o.input[0] == "read"]
    writer: dict[Any, Operation] = {}
    for a in appends:
        x = a.input[1]
        try:
            first = writer.setdefault(x, a)
        except TypeError:
            raise ValueError(f"list elements must be hashable, got {x!r}") from None
        if first is not a:
            raise ValueError(
                f"{x!r} is appended twice; check_list_append needs unique elements "
                "(check_operations with list_model() takes any)"
            )
    origin = min((o.call for o in ops), default=0.0)
    failure = _agreement(reads, writer, origin)
    if failure is None:
        longest = max((r.output for r in reads), key=len, default=())
        position = {x: i for i, x in enumerate(longest)}
        found = [
            f
            for f in (
                _appends_in_order(appends, position, origin),
                _reads_see_the_past(appends, reads, position, origin),
                _reads_miss_the_future(appends, reads, position, origin),
                _reads_never_shrink(reads, origin),
            )
            if f is not None
        ]
        failure = min(found, key=lambda f: f[0].call, default=None)
    seconds = time.monotonic() - started
    verdict = Verdict.OK if failure is None else Verdict.ILLEGAL
    partitions = [PartitionResult(None, verdict, len(ops), 0, round(seconds, 6))]
    if failure is None:
        explanation = f"linearizable: {len(appends)} appends, {len(reads)} reads"
        return CheckResult(verdict, None, explanation, 0, seconds, [], partitions)
    _, explanation, culprits = failure
    return CheckResult(verdict, None, explanation, 0, seconds, culprits, partitions)


def _line(op: Operation, origin: float) -> str:
    ret = "inf" if math.isinf(op.return_time) else f"+{op.return_time - origin:.6f}"
    span = f"[+{op.call - origin:.6f}, {ret}]"
    return f"  client {op.client_id:<4} {span:<28} {_DESCRIBE(op.input, op.output)}"


def _failure(at: Operation, text: str, ops: list[Operation], origin: float) -> _Failure:
    lines = [text + " (times from the first call):", *(_line(o, origin) for o in ops)]
    return at, "\n".join(lines), ops


def _agreement(
    reads: list[Operation], writer: dict[Any, Operation], origin: float
) -> _Failure | None:
    """Rule 1: one list, each element once, each written by an append."""
    if not reads:
        return None
    longest = max(reads, key=lambda r: len(r.output))
    seen: set[Any] = set()
    for x in longest.output:
        try:
            twice = x in seen
            written = x in writer
        except TypeError:
            raise ValueError(f"list elements must be hashable, got {x!r}") from None
        if twice:
            text = f"a read shows {x!r} twice: its append took effect twice"
            return _failure(longest, text, [longest, writer[x]], origin)
        if not written:
            return _failure(
                longest, f"a read shows {x!r}, which no append wrote", [longest], origin
            )
        seen.add(x)
    for r in sorted(reads, key=lambda o: o.call):
        if r.output != longest.output[: len(r.output)]:
            text = "two reads show different lists (neither is a prefix of the other)"
            return _failure(r, text, sorted([r, longest], key=lambda o: o.call), origin)
    return None


def _prefix_max(values: Sequence[float]) -> list[int]:
    """best[k]: the index of the largest of values[: k + 1] (the first such)."""
    best: list[int] = []
    for i, v in enumerate(values):
        best.append(i if not best or v > values[best[-1]] else best[-1])
    return best


def _appends_in_order(
    appends: list[Operation], position: dict[Any, int], origin: float
) -> _Failure | None:
    """Rule 2: an append that returned before one shown in S was invoked is in S, before it."""
    done = sorted(
        (a for a in appends if not math.isinf(a.return_time)), key=lambda a: a.return_time
    )
    returns = [a.return_time for a in done]
    where = [position.get(a.input[1], math.inf) for a in done]
    best = _prefix_max(where)
    shown = sorted((a for a in appends if a.input[1] in position), key=lambda a: a.call)
    for b in shown:
        k = bisect.bisect_left(returns, b.call)
        if k and where[best[k - 1]] >= position[b.input[1]]:
            a = done[best[k - 1]]
            x, y = a.input[1], b.input[1]
            if a.input[1] in position:
                text = f"reads show {y!r} before {x!r}, but append({x!r}) returned first"
            else:
                text = (
                    f"append({x!r}) returned before append({y!r}) was invoked, and reads "
                    f"show {y!r} but never {x!r}"
                )
            return _failure(b, text, [a, b], origin)
    return None


def _reads_see_the_past(
    appends: list[Operation], reads: list[Operation], position: dict[Any, int], origin: float
) -> _Failure | None:
    """Rule 3: an append that returned before a read was invoked is in that read."""
    done = sorted(
        (a for a in appends if not math.isinf(a.return_time)), key=lambda a: a.return_time
    )
    returns = [a.return_time for a in done]
    where = [position.get(a.input[1], math.inf) for a in done]
    best = _prefix_max(where)
    for r in sorted(reads, key=lambda o: o.call):
        k = bisect.bisect_left(returns, r.call)
        if k and where[best[k - 1]] >= len(r.output):
            a = done[best[k - 1]]
            x = a.input[1]
            if x in position:
                text = (
                    f"a read misses {x!r}, whose append returned before the read was "
                    "invoked (a later read shows it)"
                )
            else:
                text = (
                    f"a read misses {x!r}, whose append returned before the read was "
                    "invoked, and no read ever shows it"
                )
            return _failure(r, text, [a, r], origin)
    return None


def _reads_miss_the_future(
    appends: list[Operation], reads: list[Operation], position: dict[Any, int], origin: float
) -> _Failure | None:
    """Rule 4: a read shows no element whose append was invoked after it returned."""
    shown = sorted((a for a in appends if a.input[1] in position), key=lambda a: a.call)
    calls = [a.call for a in shown]
    # least[j]: the index in `shown` of the earliest element among shown[j:].
    least = [0] * len(shown)
    for j in range(len(shown) - 1, -1, -1):
        here = position[shown[j].input[1]]
        later = least[j + 1] if j + 1 < len(shown) else -1
        least[j] = j if later < 0 or here <= position[shown[later].input[1]] else later
    for r in sorted(reads, key=lambda o: o.call):
        j = bisect.bisect_right(calls, r.return_time)
        if j < len(shown) and position[shown[least[j]].input[1]] < len(r.output):
            a = shown[least[j]]
            text = f"a read shows {a.input[1]!r} before its append was invoked"
            return _failure(r, text, [r, a], origin)
    return None


def _reads_never_shrink(reads: list[Operation], origin: float) -> _Failure | None:
    """Rule 5: a read that returned before another was invoked shows no more than it."""
    by_return = sorted(reads, key=lambda o: o.return_time)
    returns = [r.return_time for r in by_return]
    best = _prefix_max([len(r.output) for r in by_return])
    for r in sorted(reads, key=lambda o: o.call):
        k = bisect.bisect_left(returns, r.call)
        if k and len(by_return[best[k - 1]].output) > len(r.output):
            earlier = by_return[best[k - 1]]
            x = earlier.output[len(r.output)]
            text = (
                f"{x!r} vanished: a read shows it, and a read invoked after that one "
                "returned does not"
            )
            return _failure(r, text, [earlier, r], origin)
    return None
