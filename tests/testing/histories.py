"""Histories with known verdicts: simulated linearizable objects, and mutations of
them that no order can explain. Also a brute-force checker for tiny histories that
shares no code with the real one: it runs an executable specification over every
order (and every choice of which unknown operations took effect)."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nodehost.testing import UNKNOWN, Operation

NEVER_WRITTEN = "never-written"


@dataclass(slots=True)
class _Planned:
    client_id: int
    input: tuple[Any, ...]
    call: float
    return_time: float
    at: float | None  # when it takes effect; None: never (a lost unknown write)
    known: bool


def apply_value(state: Any, kind: str, args: tuple[Any, ...]) -> tuple[Any, Any]:
    """The register/key semantics as a program: (output, next state)."""
    if kind in ("read", "get"):
        return state, state
    if kind in ("write", "put"):
        return None, args[0]
    if kind == "cas":
        return (True, args[1]) if state == args[0] else (False, state)
    if kind == "append":
        return None, args[0] if state is None else state + args[0]
    if kind == "delete":
        return None, None
    raise AssertionError(kind)


def simulate(
    rng: random.Random,
    *,
    clients: int,
    ops: int,
    keys: int = 0,
    p_read: float = 0.5,
    p_cas: float = 0.2,
    p_unknown: float = 0.05,
    p_append: float = 0.1,
    p_delete: float = 0.05,
) -> list[Operation]:
    """A linearizable history of a register (keys=0) or a map with `keys` keys.

    Each operation takes effect at a random instant inside its interval; an operation
    with an unknown outcome takes effect later or never. Written values are unique.
    """
    planned: list[_Planned] = []
    clock = [rng.random() for _ in range(clients)]
    for counter in range(1, ops + 1):
        client = rng.randrange(clients)
        call = clock[client] + rng.expovariate(10.0)
        ret = call + rng.expovariate(1.0)
        clock[client] = ret
        key: tuple[Any, ...] = (f"k{rng.randrange(keys)}",) if keys else ()
        # Maps hold strings (appends concatenate); the register holds ints.
        fresh: Any = f"v{counter}" if keys else counter
        r = rng.random()
        if r < p_read:
            inp: tuple[Any, ...] = ("get", *key) if keys else ("read",)
        elif r < p_read + p_cas:
            old: Any = rng.choice([None, *range(max(1, counter - 8), counter)])
            if keys and old is not None:
                old = f"v{old}"
            inp = ("cas", *key, old, fresh)
        elif keys and r < p_read + p_cas + p_append:
            inp = ("append", *key, f"<{counter}>")
        elif keys and r < p_read + p_cas + p_append + p_delete:
            inp = ("delete", *key)
        else:
            inp = ("put", *key, fresh) if keys else ("write", fresh)
        known = rng.random() >= p_unknown
        if known:
            at: float | None = rng.uniform(call, ret)
        else:
            at = rng.uniform(call, ret + 2.0) if rng.random() < 0.5 else None
        planned.append(_Planned(client, inp, call, ret, at, known))

    state: dict[Any, Any] = {}
    history = []
    for p in sorted(planned, key=lambda p: math.inf if p.at is None else p.at):
        k = p.input[1] if keys else None
        args = p.input[2:] if keys else p.input[1:]
        output = None
        if p.at is not None:
            output, state[k] = apply_value(state.get(k), p.input[0], args)
        if p.known:
            history.append(Operation(p.client_id, p.input, p.call, output, p.return_time))
        else:
            history.append(Operation(p.client_id, p.input, p.call, UNKNOWN, math.inf))
    history.sort(key=lambda o: o.call)
    return history


def _is_read(op: Operation) -> bool:
    return op.input[0] in ("read", "get")


def _effective_value(op: Operation) -> tuple[bool, Any]:
    """(True, value) when `op` is known to have written `value`."""
    if op.output is UNKNOWN:
        return False, None
    kind = op.input[0]
    if kind in ("write", "put"):
        return True, op.input[-1]
    if kind == "cas" and op.output is True:
        return True, op.input[-1]
    return False, None


def mutate_never_written(rng: random.Random, history: list[Operation]) -> list[Operation] | None:
    """One answered read now returns a value no operation ever wrote."""
    reads = [i for i, o in enumerate(history) if _is_read(o) and o.output is not UNKNOWN]
    if not reads:
        return None
    i = rng.choice(reads)
    out = list(history)
    o = out[i]
    out[i] = Operation(o.client_id, o.input, o.call, NEVER_WRITTEN, o.return_time)
    return out


def mutate_stale(rng: random.Random, history: list[Operation]) -> list[Operation] | None:
    """One read now returns a value overwritten before it was invoked: w wrote v, then
    w2 (known to have taken effect) was invoked after w returned and returned before
    the read was invoked. Values are unique and there are no appends or deletes, so
    nothing else wrote v (the initial None counts as a write that returned at -inf)."""
    if any(o.input[0] in ("append", "delete") for o in history):
        return None
    writes = [(o, v) for o in history for ok, v in [_effective_value(o)] if ok]
    reads = [i for i, o in enumerate(history) if _is_read(o) and o.output is not UNKNOWN]
    rng.shuffle(reads)
    for i in reads:
        r = history[i]
        done = [(w, v) for w, v in writes if _key(w) == _key(r) and w.return_time < r.call]
        candidates: list[tuple[Operation | None, Any]] = [(None, None), *done]
        rng.shuffle(candidates)
        for w, v in candidates:
            w_ret = -math.inf if w is None else w.return_time
            if v != r.output and any(w2.call > w_ret for w2, _ in done):
                out = list(history)
                out[i] = Operation(r.client_id, r.input, r.call, v, r.return_time)
                return out
    return None


def _key(op: Operation) -> Any:
    kind = op.input[0]
    if kind in ("get", "put", "append", "delete") or (kind == "cas" and len(op.input) == 4):
        return op.input[1]
    return None


def brute_force(
    history: list[Operation],
    apply: Callable[[Any, tuple[Any, ...]], tuple[Any, Any]],
    initial: Any,
) -> bool:
    """Linearizable iff some subset of the unknown operations, plus all known ones,
    has an order that respects real time and reproduces every known output."""
    known = [o for o in history if o.output is not UNKNOWN]
    maybe = [o for o in history if o.output is UNKNOWN]
    for mask in range(1 << len(maybe)):
        chosen = known + [o for j, o in enumerate(maybe) if mask >> j & 1]
        if _some_order(chosen, apply, initial):
            return True
    return False


def _some_order(
    ops: list[Operation], apply: Callable[[Any, tuple[Any, ...]], tuple[Any, Any]], state: Any
) -> bool:
    if not ops:
        return True
    for i, o in enumerate(ops):
        rest = ops[:i] + ops[i + 1 :]
        # o may go first only if no remaining operation returned before o was called.
        if any(p.return_time < o.call for p in rest):
            continue
        output, nxt = apply(state, o.input)
        if o.output is not UNKNOWN and output != o.output:
            continue
        if _some_order(rest, apply, nxt):
            return True
    return False


def register_apply(state: Any, inp: tuple[Any, ...]) -> tuple[Any, Any]:
    return apply_value(state, inp[0], inp[1:])


def kv_apply(state: Any, inp: tuple[Any, ...]) -> tuple[Any, Any]:
    """The whole map as one value (a sorted tuple of items): no partitioning here."""
    items = dict(state)
    output, items[inp[1]] = apply_value(items.get(inp[1]), inp[0], inp[2:])
    return output, tuple(sorted((k, v) for k, v in items.items() if v is not None))


def simulate_list(rng: random.Random, clients: int, ops: int, p_unknown: float) -> list[Operation]:
    """A linearizable history: each operation takes effect inside its interval; a
    timed-out append later or never."""
    planned: list[tuple[float, int, tuple[Any, ...], float, float, bool]] = []
    clock = [rng.random() for _ in range(clients)]
    for n in range(ops):
        client = rng.randrange(clients)
        call = clock[client] + rng.expovariate(10.0)
        ret = call + rng.expovariate(1.0)
        clock[client] = ret
        known = rng.random() >= p_unknown
        inp: tuple[Any, ...] = ("read",) if rng.random() < 0.4 else ("append", n)
        if inp == ("read",):
            known = True  # an unanswered read is no history
        at = rng.uniform(call, ret) if known else rng.uniform(call, ret + 3.0)
        if not known and rng.random() < 0.5:
            at = math.inf  # never took effect
        planned.append((at, client, inp, call, ret, known))
    state: tuple[Any, ...] = ()
    history = []
    for at, client, inp, call, ret, known in sorted(planned, key=lambda p: p[0]):
        output: Any = None
        if inp[0] == "append" and not math.isinf(at):
            state = (*state, inp[1])
        elif inp[0] == "read":
            output = state
        if known:
            history.append(Operation(client, inp, call, output, ret))
        else:
            history.append(Operation(client, inp, call, UNKNOWN, math.inf))
    return sorted(history, key=lambda o: o.call)
