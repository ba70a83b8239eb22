"""A run's verdicts: a check that did not decide fails the run; the same history,
decided, passes it. Appended strings never need the search's budget."""

from __future__ import annotations

import math
import random

from nodehost.testing import UNKNOWN, Operation
from tests.chaos.anomalies import Kind
from tests.chaos.run import _violations
from tests.chaos.verify import Histories, Verdicts, judge
from tests.testing.histories import simulate


def kinds_of(verdicts: Verdicts) -> list[str]:
    summary = {
        "checker": {
            "linearizable": verdicts.linearizable,
            "explanation": verdicts.explanation,
        },
        "recovery_seconds": 1.0,
    }
    return [v["kind"] for v in _violations(summary, verdicts)]


def register_history() -> Histories:
    """A linearizable history of one key with many timed-out writes: hard enough that
    the search cannot decide it in no time."""
    h = Histories()
    ops = simulate(
        random.Random(3), clients=10, ops=3000, keys=1, p_unknown=0.1, p_append=0, p_delete=0
    )
    h.kv = [Operation(o.client_id, o.input, o.call, o.output, o.return_time) for o in ops]
    h.origin = min(o.call for o in ops)
    return h


def test_an_undecided_check_fails_the_run() -> None:
    verdicts = judge(register_history(), timeout=1e-6)
    assert verdicts.linearizable == "unknown"
    assert verdicts.unknown_keys == 1
    assert kinds_of(verdicts) == [Kind.UNDECIDED]


def test_the_same_history_decided_passes() -> None:
    verdicts = judge(register_history(), timeout=60.0)
    assert verdicts.linearizable == "ok", verdicts.explanation
    assert kinds_of(verdicts) == []


def test_appended_strings_are_decided_without_a_budget() -> None:
    """Thousands of appends, a third of them timed out, on one key: decided at once."""
    h = Histories()
    rng = random.Random(5)
    text, t = "", 0.0
    for n in range(3000):
        t += 0.001
        token = f"{n}.0;"
        if rng.random() < 0.3:
            h.kv.append(Operation(n % 10, ("append", "a", token), t, UNKNOWN, math.inf))
            if rng.random() < 0.5:
                text += token  # took effect after all
        else:
            h.kv.append(Operation(n % 10, ("append", "a", token), t, None, t + 0.0005))
            text += token
        if n % 50 == 0:
            h.kv.append(Operation(100 + n, ("get", "a"), t + 0.0006, text, t + 0.0007))
    h.origin = 0.0
    verdicts = judge(h, timeout=1e-6)
    assert verdicts.list_keys == 1
    assert verdicts.linearizable == "ok", verdicts.explanation
    assert kinds_of(verdicts) == []
