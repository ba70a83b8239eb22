"""The list-append check: exact verdicts without search, however many appends timed out.

Hand-made histories name each rule; generated ones must get the verdict of the search
(check_operations with list_model()) and of the brute force in histories.py, which
share no code with it; a simulated list with thousands of timed-out appends passes in
well under a second, where the search would explore every subset of them.
"""

from __future__ import annotations

import math
import random
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nodehost.testing import (
    UNKNOWN,
    Operation,
    Verdict,
    check_list_append,
    check_operations,
    list_model,
)

from .histories import brute_force, simulate_list


def append(client: int, x: Any, call: float, ret: float) -> Operation:
    return Operation(client, ("append", x), call, None, ret)


def timed_out(client: int, x: Any, call: float) -> Operation:
    return Operation(client, ("append", x), call, UNKNOWN, math.inf)


def read(client: int, seen: tuple[Any, ...], call: float, ret: float) -> Operation:
    return Operation(client, ("read",), call, seen, ret)


def illegal(history: list[Operation], words: str) -> list[Operation]:
    result = check_list_append(history)
    assert result.verdict is Verdict.ILLEGAL, result.explanation
    assert words in result.explanation, result.explanation
    assert check_operations(list_model(), history).verdict is Verdict.ILLEGAL
    return result.operations


def test_appends_seen_in_their_order_pass() -> None:
    history = [
        append(0, 1, 0, 1),
        append(1, 2, 0.5, 2),  # concurrent with 1: either order
        read(2, (2, 1), 3, 4),
        timed_out(0, 3, 2),
        read(1, (2, 1, 3), 5, 6),
    ]
    result = check_list_append(history)
    assert result.ok, result.explanation
    assert check_operations(list_model(), history).ok


def test_a_timed_out_append_may_never_appear() -> None:
    assert check_list_append([timed_out(0, 1, 0), read(1, (), 5, 6)]).ok


def test_an_acknowledged_append_no_read_shows_fails() -> None:
    culprits = illegal(
        [append(0, 1, 0, 1), append(1, 2, 0, 2), read(2, (1,), 5, 6)], "no read ever shows it"
    )
    assert culprits[0].input == ("append", 2)


def test_a_read_missing_an_earlier_append_a_later_read_shows_fails() -> None:
    illegal(
        [append(0, 1, 0, 1), read(1, (), 2, 3), read(2, (1,), 4, 5)],
        "a later read shows it",
    )


def test_an_element_shown_twice_fails() -> None:
    illegal([append(0, 1, 0, 1), read(1, (1, 1), 2, 3)], "twice")


def test_an_element_no_append_wrote_fails() -> None:
    illegal([append(0, 1, 0, 1), read(1, (1, 9), 2, 3)], "no append wrote")


def test_reads_of_two_histories_fail() -> None:
    illegal(
        [append(0, 1, 0, 5), append(1, 2, 0, 5), read(2, (1,), 1, 2), read(3, (2,), 1, 2)],
        "neither is a prefix",
    )


def test_a_vanished_element_fails() -> None:
    illegal([append(0, 1, 0, 10), read(1, (1,), 1, 2), read(2, (), 3, 4)], "vanished")


def test_an_element_read_before_its_append_was_invoked_fails() -> None:
    illegal([read(1, (1,), 0, 1), append(0, 1, 2, 3)], "before its append was invoked")


def test_appends_shown_against_real_time_fail() -> None:
    illegal(
        [append(0, 1, 0, 1), append(1, 2, 2, 3), read(2, (2, 1), 4, 5)],
        "returned first",
    )


def test_a_timed_out_append_seen_before_an_acknowledged_one_fails() -> None:
    # 1 returned before 2 was invoked; 2 took effect (a read shows it), so 1 did too.
    illegal(
        [append(0, 1, 0, 1), timed_out(1, 2, 2), read(2, (2,), 3, 4)],
        "never 1",
    )


def test_touching_intervals_are_concurrent() -> None:
    assert check_list_append([read(1, (1,), 0, 1), append(0, 1, 1, 2)]).ok
    assert check_list_append([append(0, 1, 0, 1), read(1, (), 1, 2)]).ok


def test_an_element_appended_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="appended twice"):
        check_list_append([append(0, 1, 0, 1), append(1, 1, 2, 3)])


def test_malformed_operations_are_refused() -> None:
    with pytest.raises(ValueError, match="not a list operation"):
        check_list_append([Operation(0, ("add", 1), 0, None, 1)])
    with pytest.raises(ValueError, match="list or tuple"):
        check_list_append([read(0, frozenset({1}), 0, 1)])  # type: ignore[arg-type]


GENERATED = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@GENERATED
@given(seed=st.integers(0, 2**32), clients=st.integers(1, 8))
def test_simulated_lists_pass(seed: int, clients: int) -> None:
    history = simulate_list(random.Random(seed), clients, 400, p_unknown=0.2)
    result = check_list_append(history)
    assert result.ok, result.explanation


def test_thousands_of_timed_out_appends_are_decided_at_once() -> None:
    history = simulate_list(random.Random(7), clients=20, ops=5000, p_unknown=0.3)
    started = time.monotonic()
    result = check_list_append(history)
    assert result.ok, result.explanation
    assert time.monotonic() - started < 5.0  # the search would not finish at all
    assert sum(o.output is UNKNOWN for o in history) > 500


@st.composite
def small_histories(draw: st.DrawFn, max_ops: int) -> list[Operation]:
    """Arbitrary list histories on a coarse time grid (ties and overlaps abound),
    reads of short lists of the appended elements (and one never appended)."""
    n = draw(st.integers(1, max_ops))
    elements = [*range(n), 99]
    history = []
    for i in range(n):
        call = draw(st.integers(0, 6))
        ret: float = call + draw(st.integers(0, 3))
        if draw(st.booleans()):
            seen = draw(st.lists(st.sampled_from(elements), max_size=3))
            history.append(read(i, tuple(seen), call, ret))
        elif draw(st.integers(0, 3)) == 0:
            history.append(timed_out(i, i, call))
        else:
            history.append(append(i, i, call, ret))
    return history


def list_apply(state: tuple[Any, ...], inp: tuple[Any, ...]) -> tuple[Any, tuple[Any, ...]]:
    if inp[0] == "append":
        return None, (*state, inp[1])
    return state, state


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=small_histories(max_ops=6))
def test_agrees_with_brute_force(history: list[Operation]) -> None:
    expected = brute_force(history, list_apply, ())
    assert check_list_append(history).ok is expected


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=small_histories(max_ops=10))
def test_agrees_with_the_search(history: list[Operation]) -> None:
    expected = check_operations(list_model(), history, timeout=30)
    assert expected.verdict is not Verdict.UNKNOWN
    assert check_list_append(history).verdict is expected.verdict
