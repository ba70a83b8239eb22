"""Durability of a grow-only set: nothing acknowledged is lost, nothing is invented.

Linear in the history, so it suits the long runs with many timed-out adds that
make a full linearizability search of a set explode (each subset of the timed-out
adds is a state). Histories use the set model's operations: ("add", x) and
("read",) answering the whole set.

Rules, for every answered read (intervals are closed, as everywhere here):
- lost: an add acknowledged before the read was invoked is missing from it;
- invented: an element no add had invoked before the read returned (a definitely
  failed add was dropped from the history, so its element counts as invented);
- vanished: an element seen by a read that returned before this one was invoked
  is missing from it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from typing import Any

from nodehost.testing.history import Operation, validate
from nodehost.testing.lincheck import CheckResult, Verdict
from nodehost.testing.models import normalize_set_history

_SHOWN = 10  # offending elements listed per kind


def check_durability(history: Iterable[Operation]) -> CheckResult:
    """Check a set history; OK says nothing about order beyond the three rules."""
    started = time.monotonic()
    ops = list(history)
    validate(ops)
    ops = normalize_set_history(ops)
    adds = sorted((o for o in ops if o.input[0] == "add"), key=lambda o: o.return_time)
    reads = sorted((o for o in ops if o.input[0] == "read"), key=lambda o: o.call)
    first_call: dict[Any, float] = {}
    for add in adds:
        x = add.input[1]
        first_call[x] = min(add.call, first_call.get(x, math.inf))

    lost: list[tuple[Operation, Operation]] = []  # (read, add)
    invented: list[tuple[Operation, Any]] = []
    vanished: list[tuple[Operation, Operation, Any]] = []  # (read, earlier read, x)
    by_return = sorted(reads, key=lambda o: o.return_time)
    for read in reads:
        seen: frozenset[Any] = read.output
        for add in adds:
            if add.return_time >= read.call:
                break
            if add.input[1] not in seen:
                lost.append((read, add))
        for x in seen:
            if first_call.get(x, math.inf) > read.return_time:
                invented.append((read, x))
        for earlier in by_return:
            if earlier.return_time >= read.call:
                break
            vanished.extend((read, earlier, x) for x in earlier.output - seen)

    seconds = time.monotonic() - started
    if not (lost or invented or vanished):
        return CheckResult(
            Verdict.OK,
            explanation=f"durable: {len(adds)} adds, {len(reads)} reads",
            seconds=seconds,
        )
    lines = [
        f"set is not durable: {len(lost)} lost, {len(invented)} invented, {len(vanished)} vanished"
    ]
    lines += [
        f"  lost: add({a.input[1]!r}) acknowledged at {a.return_time:.6f}, missing from "
        f"the read invoked at {r.call:.6f}"
        for r, a in lost[:_SHOWN]
    ]
    lines += [
        f"  invented: {x!r} in the read returned at {r.return_time:.6f}, never added before"
        for r, x in invented[:_SHOWN]
    ]
    lines += [
        f"  vanished: {x!r} seen by the read returned at {e.return_time:.6f}, missing from "
        f"the read invoked at {r.call:.6f}"
        for r, e, x in vanished[:_SHOWN]
    ]
    culprits: dict[int, Operation] = {}
    for r, a in lost:
        culprits.setdefault(id(a), a)
        culprits.setdefault(id(r), r)
    for r, _ in invented:
        culprits.setdefault(id(r), r)
    for r, e, _ in vanished:
        culprits.setdefault(id(e), e)
        culprits.setdefault(id(r), r)
    return CheckResult(
        Verdict.ILLEGAL,
        explanation="\n".join(lines),
        seconds=seconds,
        operations=sorted(culprits.values(), key=lambda o: o.call),
    )
