"""Hand-built histories whose verdicts can be argued on paper."""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any

import pytest

from nodehost.testing import (
    UNKNOWN,
    Operation,
    Verdict,
    check_operations,
    kv_model,
    register_model,
    set_model,
)

INF = math.inf


def op(client: int, inp: tuple[Any, ...], call: float, output: Any, ret: float) -> Operation:
    return Operation(client, inp, call, output, ret)


def timed_out(client: int, inp: tuple[Any, ...], call: float) -> Operation:
    return Operation(client, inp, call, UNKNOWN, INF)


def verdict(history: list[Operation], model: Any = None) -> Verdict:
    return check_operations(model or register_model(), history).verdict


def test_sequential_reads_see_the_last_write() -> None:
    assert (
        verdict(
            [
                op(0, ("write", 1), 0, None, 1),
                op(0, ("read",), 2, 1, 3),
                op(0, ("write", 2), 4, None, 5),
                op(0, ("read",), 6, 2, 7),
            ]
        )
        is Verdict.OK
    )


def test_a_stale_read_after_an_overwrite_fails() -> None:
    history = [
        op(0, ("write", 1), 0, None, 1),
        op(1, ("write", 2), 2, None, 3),
        op(2, ("read",), 4, 1, 5),
    ]
    result = check_operations(register_model(), history)
    assert result.verdict is Verdict.ILLEGAL
    assert result.operations[0] is history[2]
    assert "read() -> 1" in result.explanation
    assert "can be in when it returns: 2" in result.explanation


def test_a_read_concurrent_with_a_write_may_see_either_value() -> None:
    for seen in (1, 2):
        assert (
            verdict(
                [
                    op(0, ("write", 1), 0, None, 1),
                    op(1, ("write", 2), 2, None, 6),
                    op(2, ("read",), 3, seen, 4),
                ]
            )
            is Verdict.OK
        )


def test_intervals_are_closed_so_touching_operations_are_concurrent() -> None:
    # The read is invoked at the instant the write returns: it may come first.
    assert verdict([op(0, ("write", 1), 0, None, 2), op(1, ("read",), 2, None, 3)]) is Verdict.OK
    assert (
        verdict([op(0, ("write", 1), 0, None, 2), op(1, ("read",), 2.5, None, 3)])
        is Verdict.ILLEGAL
    )


def test_two_reads_cannot_see_a_new_then_an_old_value() -> None:
    # Both reads overlap the write, but the second starts after the first returned.
    assert (
        verdict(
            [
                op(0, ("write", 1), 0, None, 10),
                op(1, ("read",), 1, 1, 2),
                op(2, ("read",), 3, None, 4),
            ]
        )
        is Verdict.ILLEGAL
    )


def test_compare_and_set() -> None:
    assert (
        verdict(
            [
                op(0, ("write", 1), 0, None, 1),
                op(0, ("cas", 1, 2), 2, True, 3),
                op(0, ("cas", 1, 3), 4, False, 5),
                op(0, ("read",), 6, 2, 7),
            ]
        )
        is Verdict.OK
    )
    assert (
        verdict([op(0, ("write", 1), 0, None, 1), op(0, ("cas", 1, 2), 2, False, 3)])
        is Verdict.ILLEGAL
    )
    assert verdict([op(0, ("cas", 1, 2), 0, True, 1)]) is Verdict.ILLEGAL


def test_an_initial_value() -> None:
    history = [op(0, ("read",), 0, 0, 1)]
    assert check_operations(register_model(initial=0), history).ok
    assert not check_operations(register_model(), history).ok


def test_a_timed_out_write_may_take_effect_long_after_its_call() -> None:
    history = [
        timed_out(0, ("write", 1), 0),
        op(1, ("read",), 10, None, 11),
        op(1, ("read",), 20, 1, 21),
        op(1, ("read",), 30, 1, 31),
    ]
    assert verdict(history) is Verdict.OK


def test_a_timed_out_write_may_never_take_effect() -> None:
    assert verdict([timed_out(0, ("write", 1), 0), op(1, ("read",), 10, None, 11)]) is Verdict.OK


def test_a_timed_out_write_takes_effect_once() -> None:
    history = [
        op(0, ("write", 0), 0, None, 1),
        timed_out(1, ("write", 1), 2),
        op(2, ("read",), 3, 1, 4),
        op(2, ("write", 2), 5, None, 6),
        op(2, ("read",), 7, 1, 8),  # would need the timed-out write a second time
    ]
    assert verdict(history) is Verdict.ILLEGAL


def test_a_timed_out_write_cannot_take_effect_before_its_call() -> None:
    history = [op(0, ("read",), 0, 1, 1), timed_out(1, ("write", 1), 2)]
    assert verdict(history) is Verdict.ILLEGAL


def test_a_failed_compare_and_set_can_be_explained_by_a_timed_out_write() -> None:
    # Nothing ever reads 2, but only the timed-out write can make the cas fail.
    history = [
        op(0, ("write", 1), 0, None, 1),
        timed_out(1, ("write", 2), 2),
        op(0, ("cas", 1, 3), 3, False, 4),
    ]
    assert verdict(history) is Verdict.OK
    assert verdict([history[0], history[2]]) is Verdict.ILLEGAL


def test_chained_timed_out_operations() -> None:
    # write(1) then cas(1, 2) must both have happened, in that order, for the read.
    history = [
        timed_out(0, ("cas", 1, 2), 0),
        timed_out(1, ("write", 1), 1),
        op(2, ("read",), 5, 2, 6),
    ]
    assert verdict(history) is Verdict.OK


def test_reads_whose_answer_never_came_are_dropped() -> None:
    history = [op(0, ("write", 1), 0, None, 1), timed_out(1, ("read",), 2)]
    result = check_operations(register_model(), history)
    assert result.ok
    assert result.partitions[0].operations == 1


def test_kv_keys_are_independent_and_the_failing_key_is_named() -> None:
    history = [
        op(0, ("put", "a", "x"), 0, None, 1),
        op(1, ("put", "b", "y"), 0, None, 1),
        op(0, ("get", "a"), 2, "x", 3),
        op(1, ("get", "b"), 2, None, 3),  # stale: b was y since 1
        op(2, ("get", "c"), 2, None, 3),
    ]
    result = check_operations(kv_model(), history)
    assert result.verdict is Verdict.ILLEGAL
    assert result.key == "b"
    assert result.operations[0] is history[3]
    assert "key 'b'" in result.explanation


def test_kv_append_delete_and_cas() -> None:
    history = [
        op(0, ("append", "k", "a"), 0, None, 1),
        op(0, ("append", "k", "b"), 2, None, 3),
        op(1, ("get", "k"), 4, "ab", 5),
        op(1, ("cas", "k", "ab", "c"), 6, True, 7),
        op(0, ("delete", "k"), 8, None, 9),
        op(1, ("get", "k"), 10, None, 11),
        op(1, ("cas", "k", None, "d"), 12, True, 13),
        op(1, ("get", "k"), 14, "d", 15),
    ]
    assert verdict(history, kv_model()) is Verdict.OK
    history[2] = op(1, ("get", "k"), 4, "ba", 5)
    assert verdict(history, kv_model()) is Verdict.ILLEGAL


def test_set_reads_return_the_whole_set() -> None:
    history = [
        op(0, ("add", 1), 0, None, 1),
        op(1, ("add", 2), 0, None, 3),
        op(2, ("read",), 2, [1], 2.5),
        op(2, ("read",), 4, {1, 2}, 5),
    ]
    assert verdict(history, set_model()) is Verdict.OK
    history[3] = op(2, ("read",), 4, {2}, 5)
    assert verdict(history, set_model()) is Verdict.ILLEGAL


def test_an_empty_history_is_linearizable() -> None:
    assert verdict([]) is Verdict.OK
    assert check_operations(kv_model(), []).partitions == []


def test_a_spent_budget_gives_unknown_for_the_hard_key_only() -> None:
    # 40 overlapping writes then a read of a value nobody wrote: ruling out every
    # subset of the writes is beyond any small budget.
    hard = [op(i, ("put", "hard", i), 0, None, 100) for i in range(40)]
    hard.append(op(40, ("get", "hard"), 1, -1, 2))
    easy = [op(41, ("put", "easy", 1), 0, None, 1), op(41, ("get", "easy"), 2, 1, 3)]
    result = check_operations(kv_model(), hard + easy, timeout=0.2)
    assert result.verdict is Verdict.UNKNOWN
    assert result.key == "hard"
    verdicts = {p.key: p.verdict for p in result.partitions}
    assert verdicts == {"hard": Verdict.UNKNOWN, "easy": Verdict.OK}
    assert "1 of 2 keys undecided" in result.explanation


def test_a_zero_budget_still_decides_small_histories() -> None:
    history = [op(0, ("write", 1), 0, None, 1), op(0, ("read",), 2, 1, 3)]
    assert check_operations(register_model(), history, timeout=0).ok


@pytest.mark.parametrize(
    ("history", "message"),
    [
        ([op(0, ("write", 1), 2, None, 1)], "before its call"),
        ([op(0, ("write", 1), INF, None, INF)], "not finite"),
        ([op(0, ("write", 1), 0, None, INF)], "unknown outcome"),
        ([op(0, ("write", 1), 0, UNKNOWN, 1)], "unknown outcome"),
        ([op(0, ("write",), 0, None, 1)], "not a register operation"),
        ([op(0, ["write", 1], 0, None, 1)], "not a register operation"),
        ([op(0, ("cas", 1, 2), 0, 1, 1)], "cas returns True or False"),
        ([op(0, ("write", 1), 0, 1, 1)], "write returns None"),
    ],
)
def test_bad_histories_are_rejected_clearly(history: list[Operation], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_operations(register_model(), history)


def test_kv_rejects_what_it_cannot_check() -> None:
    with pytest.raises(ValueError, match="not a kv operation"):
        check_operations(kv_model(), [op(0, ("read",), 0, None, 1)])
    with pytest.raises(ValueError, match="append takes str or bytes"):
        check_operations(kv_model(), [op(0, ("append", "k", 1), 0, None, 1)])


class _ListModel:
    """A user model whose states are lists: memoization cannot work with it."""

    def init(self) -> list[int]:
        return []

    def step(self, state: list[int], input: Any, output: Any) -> tuple[bool, list[int]]:
        return True, [*state, input]

    def partition(self, history: Sequence[Operation]) -> dict[Hashable, list[Operation]]:
        return {None: list(history)}

    def read_only(self, input: Any, output: Any) -> bool:
        return False

    def describe_operation(self, input: Any, output: Any) -> str:
        return repr(input)


def test_a_model_with_unhashable_states_is_rejected() -> None:
    with pytest.raises(TypeError, match="hashable"):
        check_operations(_ListModel(), [op(0, 1, 0, None, 1)])
