"""Linearizability checking: can one total order explain every client's view?

The search is Wing & Gong's (1993) with Lowe's (2017) memoization, as porcupine runs
it: walk the call/return events in time order, tentatively linearize any pending call
the model accepts, and backtrack when the return of a still-unlinearized operation is
reached. A (linearized set, model state) pair met twice is a dead end met twice, so it
is skipped. Each key is checked alone (Horn & Kroening 2015, P-compositionality).

Rules:
- An operation with an unknown outcome (return_time = inf) may be linearized at any
  point after its call, or never: nothing has to follow it, so the end always will do.
- Verdicts are sound both ways: OK means an order was found, ILLEGAL means every
  order was ruled out. When the budget runs out first the verdict is UNKNOWN.
- On ILLEGAL the explanation is the earliest point of failure: the operation whose
  return makes the history non-linearizable (everything known before it still has an
  order), with the operations concurrent with it. Finding that point costs a few more
  searches of prefixes, within the same budget.
"""

from __future__ import annotations

import bisect
import enum
import math
import time
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from nodehost.testing.history import UNKNOWN, Operation, validate
from nodehost.testing.models import Model, Unobserved

_BATCH = 2048  # search steps between looks at the clock
_STUCK_STATES = 8  # states reported in an explanation


class Verdict(enum.Enum):
    OK = "ok"
    ILLEGAL = "illegal"
    UNKNOWN = "unknown"


@dataclass(slots=True)
class PartitionResult:
    """The verdict on one key."""

    key: Hashable
    verdict: Verdict
    operations: int
    explored: int
    seconds: float


@dataclass(slots=True)
class CheckResult:
    """`key` is the illegal key (or the first undecided one); `operations` are the ones
    that cannot be ordered, the failing one first."""

    verdict: Verdict
    key: Hashable = None
    explanation: str = ""
    explored: int = 0
    seconds: float = 0.0
    operations: list[Operation] = field(default_factory=list)
    partitions: list[PartitionResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.OK


class _Search:
    """The depth-first search over one key, resumable so keys can share one budget.

    Known operations are numbered by return time, so the linearized ones are a prefix
    [0, low) plus a sparse `window` above it: memo keys stay small however long the
    history. Their events form a doubly linked list (node 0 the head, 1..n the calls,
    n+1..2n the returns, 2n+1 the tail) that linearizing unlinks in O(1).

    Two rules keep the search from branching where no branch can matter, each because
    one configuration dominates another (whatever order completes the dominated one
    also completes the dominating one):
    - a read-only operation that fits the state now is linearized now, with no
      alternative tried: doing it later cannot see anything new;
    - operations of unknown outcome are kept apart (bitmask `unknown`) and tried only
      after every known call has failed: leaving one out is never worse, so a
      configuration is skipped when the memo holds the same one with a subset of them.
    """

    def __init__(self, model: Model[Any], ops: Sequence[Operation]) -> None:
        self.step = model.step
        known = sorted(
            (o for o in ops if not math.isinf(o.return_time)),
            key=lambda o: (o.return_time, o.call),
        )
        unknown = sorted((o for o in ops if math.isinf(o.return_time)), key=lambda o: o.call)
        self.ops = known + unknown  # known ones first: an op id indexes both
        n = self.n = len(known)
        self.inputs = [o.input for o in known]
        self.outputs = [o.output for o in known]
        self.read_only = [model.read_only(o.input, o.output) for o in known]
        self.returns = [o.return_time for o in known]
        self.unknown_inputs = [o.input for o in unknown]
        self.unknown_calls = [o.call for o in unknown]
        self.twins = _twins(self.unknown_inputs)
        events = sorted(
            [(o.call, 0, i) for i, o in enumerate(known)]
            + [(o.return_time, 1, i) for i, o in enumerate(known)]
        )  # at equal times calls come first: intervals are closed
        self.tail = 2 * n + 1
        self.nxt = [0] * (2 * n + 2)
        self.prv = [0] * (2 * n + 2)
        order = [0, *(i + 1 + kind * n for _, kind, i in events), self.tail]
        for a, b in pairwise(order):
            self.nxt[a] = b
            self.prv[b] = a
        # The ops returning last: in a truncated history, where it fails.
        self.watch = bisect.bisect_left(self.returns, self.returns[-1]) if n else 0
        self.stuck: dict[Any, None] = {}
        self.deepest = -1
        self.blocked = -1  # op whose return stopped the deepest partial order
        self.state: Any = model.init()
        try:
            hash(self.state)
        except TypeError:
            raise TypeError(
                f"model states must be hashable (the search memoizes them), got {self.state!r}"
            ) from None
        self.low = 0
        self.window = 0
        self.unknown = 0
        self.pos = self.nxt[0]  # a node of the list, or -1-k for children[k]
        self.children: list[tuple[Any, int]] = []  # unknown ops that fit a dead end
        self.stack: list[tuple[int, Any, int, int, int, bool, list[tuple[Any, int]]]] = []
        self.memo: dict[tuple[int, int, Any], list[int]] = {}
        self.verdict: Verdict | None = Verdict.OK if n == 0 else None
        self.seconds = 0.0

    @property
    def explored(self) -> int:
        return len(self.memo)

    def run(self, deadline: float) -> Verdict | None:
        """Search until decided (returns the verdict) or past `deadline` (returns None)."""
        if self.verdict is not None:
            return self.verdict
        started = time.monotonic()
        nxt, prv, n, tail = self.nxt, self.prv, self.n, self.tail
        step, inputs, outputs, read_only = self.step, self.inputs, self.outputs, self.read_only
        memo, stack, stuck, watch = self.memo, self.stack, self.stuck, self.watch
        state, low, window, unknown, pos = self.state, self.low, self.window, self.unknown, self.pos
        children = self.children
        verdict: Verdict | None = None
        while verdict is None:
            for _ in range(_BATCH):
                if pos > 0:
                    if pos > n:  # the return of op `low`: no known call fits; try unknown ones
                        children = self._unknown_children(state, low, window, unknown)
                        pos = -1
                        continue
                    op = pos - 1  # a known call: linearize it here?
                    ok, new_state = step(state, inputs[op], outputs[op])
                    if not ok:
                        pos = nxt[pos]
                        continue
                    if op == low:  # the prefix grows over its trailing ones
                        w = window | 1
                        shift = (~w & (w + 1)).bit_length() - 1
                        new_low, new_window = low + shift, w >> shift
                    else:
                        new_low, new_window = low, window | (1 << (op - low))
                    key = (new_low, new_window, new_state)
                    masks = memo.get(key)
                    if masks is None:
                        memo[key] = [unknown]
                    elif (0 not in masks) if unknown == 0 else all(m & ~unknown for m in masks):
                        masks.append(unknown)
                    elif read_only[op]:
                        pos = 0  # what it leads to is dead, so is here
                    else:
                        pos = nxt[pos]
                        continue
                    if pos:
                        stack.append((pos, state, low, window, unknown, read_only[op], children))
                        state, low, window = new_state, new_low, new_window
                        ret = pos + n
                        a, b = prv[pos], nxt[pos]
                        nxt[a], prv[b] = b, a
                        a, b = prv[ret], nxt[ret]
                        nxt[a], prv[b] = b, a
                        pos = nxt[0]
                        if pos == tail:
                            verdict = Verdict.OK
                            break
                        continue
                elif pos and -pos <= len(children):  # the next unknown op to try
                    stack.append((pos, state, low, window, unknown, False, children))
                    state, unknown = children[-pos - 1]
                    pos = nxt[0]
                    continue
                # Dead end: nothing fits before op `low` returns. Backtrack.
                if len(stack) > self.deepest:
                    self.deepest, self.blocked = len(stack), low
                if low >= watch and len(stuck) < _STUCK_STATES:
                    stuck[state] = None
                forced = True
                while forced and stack:
                    pos, state, low, window, unknown, forced, children = stack.pop()
                    if pos > 0:
                        ret = pos + n
                        nxt[prv[ret]] = ret
                        prv[nxt[ret]] = ret
                        nxt[prv[pos]] = pos
                        prv[nxt[pos]] = pos
                if forced:
                    verdict = Verdict.ILLEGAL
                    break
                pos = nxt[pos] if pos > 0 else pos - 1
            if verdict is None and time.monotonic() >= deadline:
                break
        self.state, self.low, self.window, self.unknown, self.pos = state, low, window, unknown, pos
        self.children = children
        self.verdict = verdict
        self.seconds += time.monotonic() - started
        return verdict

    def _unknown_children(
        self, state: Any, low: int, window: int, unknown: int
    ) -> list[tuple[Any, int]]:
        """The configurations one unknown op away from a dead end, all put in the memo
        before any is explored: a longer chain of unknown ops reaching the same state
        is then dominated by the one-op child, instead of being explored first."""
        children = []
        limit = self.returns[low]  # real time: only ops called before `low` returned
        step, inputs, twins, memo = self.step, self.unknown_inputs, self.twins, self.memo
        for i, call in enumerate(self.unknown_calls):
            if call > limit:
                break
            if unknown >> i & 1:
                continue
            twin = twins[i]
            if twin >= 0 and not unknown >> twin & 1:
                continue  # an equal op called earlier is unused: it stands for both
            ok, new_state = step(state, inputs[i], UNKNOWN)
            if not ok or new_state == state:  # no effect: dominated by where we are
                continue
            new_unknown = unknown | (1 << i)
            key = (low, window, new_state)
            masks = memo.get(key)
            if masks is None:
                memo[key] = [new_unknown]
            elif all(m & ~new_unknown for m in masks):
                masks.append(new_unknown)
            else:
                continue
            children.append((new_state, new_unknown))
        return children


def _twins(inputs: list[Any]) -> list[int]:
    """For each input, the index of the last equal one before it, or -1."""
    last: dict[Any, int] = {}
    twins = []
    for i, inp in enumerate(inputs):
        try:
            twins.append(last.get(inp, -1))
            last[inp] = i
        except TypeError:  # unhashable: no twins
            twins.append(-1)
    return twins


def check_operations(
    model: Model[Any], history: Iterable[Operation], timeout: float | None = None
) -> CheckResult:
    """Is `history` linearizable under `model`? `timeout` (seconds) bounds the whole
    check; None means no bound. Raises ValueError for a malformed history."""
    started = time.monotonic()
    deadline = math.inf if timeout is None else started + timeout
    ops = list(history)
    validate(ops)
    searches = [(key, _Search(model, part)) for key, part in model.partition(ops).items()]
    searches.sort(key=lambda ks: ks[1].n)  # many small keys decided beats one big one
    pending = searches
    illegal: tuple[Hashable, _Search] | None = None
    # Rounds of equal shares: a hard key cannot starve the easy ones.
    while pending and illegal is None:
        share = (deadline - time.monotonic()) / len(pending)
        undecided = []
        for key, search in pending:
            verdict = search.run(min(deadline, time.monotonic() + max(share, 0.0)))
            if verdict is None:
                undecided.append((key, search))
            elif verdict is Verdict.ILLEGAL:
                illegal = (key, search)
                break
        pending = undecided
        if time.monotonic() >= deadline:
            break

    partitions = [
        PartitionResult(
            key, s.verdict or Verdict.UNKNOWN, len(s.ops), s.explored, round(s.seconds, 6)
        )
        for key, s in searches
    ]
    explored = sum(p.explored for p in partitions)
    if illegal is not None:
        key, search = illegal
        explanation, culprits = _explain(model, key, search, deadline)
        culprits = _as_recorded(culprits, ops)
        verdict, found_key = Verdict.ILLEGAL, key
    else:
        undecided_keys = [p for p in partitions if p.verdict is Verdict.UNKNOWN]
        if undecided_keys:
            first = undecided_keys[0]
            verdict, found_key, culprits = Verdict.UNKNOWN, first.key, []
            explanation = (
                f"{len(undecided_keys)} of {len(partitions)} keys undecided after "
                f"{timeout} s; first: key {first.key!r}, {first.operations} operations, "
                f"{first.explored} states explored"
            )
        else:
            verdict, found_key, culprits = Verdict.OK, None, []
            explanation = f"linearizable: {len(ops)} operations, {len(partitions)} keys"
    return CheckResult(
        verdict,
        found_key,
        explanation,
        explored,
        time.monotonic() - started,
        culprits,
        partitions,
    )


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


def _explain(
    model: Model[Any], key: Hashable, search: _Search, deadline: float
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
        probe = _Search(model, truncate(model, ops, times[mid]))
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
    lines = [
        f"key {key!r} is not linearizable: no order of its operations explains {first}, "
        "though everything that returned before it can be ordered. Operations concurrent "
        "with it (times from the key's first call):",
        *(line(o, "   <- cannot be ordered") for o in blocked),
        *(line(o, _note(o, pending)) for o in concurrent),
    ]
    if alike:
        lines.append(
            f"  and {len(alike)} earlier operations of unknown outcome writing values "
            "nothing observed"
        )
    if proof.stuck:
        states = ", ".join(repr(s) for s in proof.stuck)
        lines.append(f"  states the key can be in when it returns: {states}")
    if not complete:
        lines.append("  (budget ran out while narrowing: the failure may start earlier)")
    return "\n".join(lines), [*blocked, *concurrent, *alike]


def _note(op: Operation, pending: set[tuple[int, float]]) -> str:
    if (op.client_id, op.call) in pending:
        return "   (had not returned yet)"
    return "   (outcome unknown)" if op.output is UNKNOWN else ""


def _writes_unobserved(op: Operation) -> bool:
    return isinstance(op.input, tuple) and any(isinstance(v, Unobserved) for v in op.input)


def _as_recorded(found: list[Operation], history: list[Operation]) -> list[Operation]:
    """Models may hand the search rewritten copies; report the operations as given."""
    recorded: dict[tuple[int, float, float], list[Operation]] = {}
    for op in history:
        recorded.setdefault((op.client_id, op.call, op.return_time), []).append(op)
    out = []
    for op in found:
        same = recorded.get((op.client_id, op.call, op.return_time), [])
        out.append(same[0] if len(same) == 1 else op)
    return out
