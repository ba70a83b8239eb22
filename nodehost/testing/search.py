"""The search for one key: Wing & Gong (1993) with Lowe's (2017) memoization.

Walk the call/return events in time order, tentatively linearize any pending call
the model accepts, and backtrack on reaching the return of an operation not yet
linearized. A configuration (linearized set, model state) met twice is a dead end
met twice, so it is skipped. This is porcupine's loop, with the pruning rules of
`Search` on top.

Rules:
- Operation times only order events. The wall clock is read every few thousand
  steps, to stop at a deadline; a stopped search resumes exactly where it was.
- Pruning only ever skips a configuration dominated by one that is, or will be,
  explored: OK means an order was found, ILLEGAL that none exists.
"""

from __future__ import annotations

import bisect
import enum
import math
import time
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

from nodehost.testing.history import UNKNOWN, Operation
from nodehost.testing.models import Model

_BATCH = 2048  # search steps between looks at the clock
_STUCK_STATES = 8  # states reported in an explanation


class Verdict(enum.Enum):
    OK = "ok"
    ILLEGAL = "illegal"
    UNKNOWN = "unknown"


class Search:
    """The depth-first search over one key, resumable so keys can share one budget.

    Known operations are numbered by return time, so the linearized ones are a prefix
    [0, low) plus a sparse `window` above it: memo keys stay small however long the
    history. Their events form a doubly linked list (node 0 the head, 1..n the calls,
    n+1..2n the returns, 2n+1 the tail) that linearizing unlinks in O(1).

    Three rules keep the search from branching where no branch can matter. Each rests
    on one configuration dominating another: any order that completes the dominated
    one also completes the dominating one, so exploring the dominating one suffices.
    - A read-only operation that fits the state now is linearized now, with no
      alternative tried: left for later, it could only see the same or less.
    - Operations of unknown outcome are kept apart (the bitmask `unknown`) and tried
      only at a dead end, after every known call failed: leaving one out is never
      worse, so a configuration is skipped when the memo holds it with a subset of
      them. All of a dead end's one-op children enter the memo together, so longer
      chains reaching the same state are skipped instead of explored first.
    - Unknown operations with equal inputs are interchangeable: only the earliest
      called unused one is tried.
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
