"""Narrowing a violation down to the first operation that cannot be ordered.

Rules:
- Truncating a history at time t (what its clients knew at t) only removes
  constraints, so a failing truncation proves the whole history fails, and the
  failures form a suffix of truncation times: bisection finds the first one.
- Models may hand the search rewritten copies of operations; explanations describe
  them with the model's words, and results give back the operations as recorded.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Hashable, Sequence
from typing import Any

from nodehost.testing.history import UNKNOWN, Operation
from nodehost.testing.models import Model, Unobserved
from nodehost.testing.search import Search, Verdict


def truncate(model: Model[Any], history: Sequence[Operation], t: float) -> list[Operation]:
    """What the clients knew at time `t`: later calls are dropped and operations still
    pending at `t` become unknown. If this is illegal, so is `history` (and every
    later truncation): only constraints were removed."""
    cut = []
    for op in history:
        if op.call > t:
            continue
        if op.return_time <= t:
            cut.append(op)
        else:
            cut.append(Operation(op.client_id, op.input, op.call, UNKNOWN, math.inf))
    return [op for part in model.partition(cut).values() for op in part]


def explain(
    model: Model[Any], key: Hashable, search: Search, deadline: float
) -> tuple[str, list[Operation]]:
    """Find the earliest return at which the key's history fails, by bisection over
    truncations (monotone: see `truncate`), starting from where the search got stuck."""
    ops = search.ops
    times = sorted({o.return_time for o in ops if not math.isinf(o.return_time)})
    lo, hi = 0, len(times) - 1  # times[hi] is known to fail
    proof = search  # the search that showed times[hi] fails
    hint = bisect.bisect_left(times, ops[search.blocked].return_time)
    guesses = [hint - 1, hint]
    complete = True
    while lo < hi:
        mid = guesses.pop() if guesses else (lo + hi) // 2
        if not lo <= mid < hi:
            continue
        probe = Search(model, truncate(model, ops, times[mid]))
        verdict = probe.run(deadline)
        if verdict is None:
            complete = False
            break
        if verdict is Verdict.ILLEGAL:
            hi, proof = mid, probe
        else:
            lo = mid + 1
    at = times[hi]
    # The contradiction lies in the truncated history: operations still pending at
    # `at` count there as unknown (reads among them as absent), so show them so.
    pending = {
        (o.client_id, o.call)
        for o in ops
        if o.call <= at < o.return_time and not math.isinf(o.return_time)
    }
    blocked = [o for o in proof.ops if o.return_time == at]
    since = min(o.call for o in blocked)
    concurrent = [o for o in proof.ops if o.return_time >= since and o.return_time != at]
    concurrent.sort(key=lambda o: o.call)
    # Timed-out writes of values nothing observed are all alike: count them.
    alike = [o for o in concurrent if o.output is UNKNOWN and _writes_unobserved(o)]
    concurrent = [o for o in concurrent if o not in alike]
    origin = min(o.call for o in ops)

    def line(op: Operation, note: str = "") -> str:
        ret = "inf" if math.isinf(op.return_time) else f"+{op.return_time - origin:.6f}"
        span = f"[+{op.call - origin:.6f}, {ret}]"
        what = model.describe_operation(op.input, op.output)
        return f"  client {op.client_id:<4} {span:<28} {what}{note}"

    first = model.describe_operation(blocked[0].input, blocked[0].output)
    proven = ", though everything that returned before it can be ordered" if complete else ""
    lines = [
        f"key {key!r} is not linearizable: no order of its operations explains {first}"
        f"{proven}. Operations concurrent with it (times from the key's first call):",
        *(line(o, "   <- cannot be ordered") for o in blocked),
        *(line(o, _note(o, pending)) for o in concurrent),
    ]
    if alike:
        lines.append(
            f"  and {len(alike)} more of unknown outcome (or not returned yet), writing "
            "values nothing observed"
        )
    if proof.stuck:
        states = ", ".join(repr(s) for s in proof.stuck)
        lines.append(f"  states the key can be in when it returns: {states}")
    if not complete:
        lines.append("  (the budget ran out while narrowing: the failure may start earlier)")
    return "\n".join(lines), [*blocked, *concurrent, *alike]


def _note(op: Operation, pending: set[tuple[int, float]]) -> str:
    if (op.client_id, op.call) in pending:
        return "   (had not returned yet)"
    return "   (outcome unknown)" if op.output is UNKNOWN else ""


def _writes_unobserved(op: Operation) -> bool:
    return isinstance(op.input, tuple) and any(isinstance(v, Unobserved) for v in op.input)


def as_recorded(found: list[Operation], history: list[Operation]) -> list[Operation]:
    """Models may hand the search rewritten copies; report the operations as given."""
    recorded: dict[tuple[int, float, float], list[Operation]] = {}
    for op in history:
        recorded.setdefault((op.client_id, op.call, op.return_time), []).append(op)
    out = []
    for op in found:
        same = recorded.get((op.client_id, op.call, op.return_time), [])
        out.append(same[0] if len(same) == 1 else op)
    return out
