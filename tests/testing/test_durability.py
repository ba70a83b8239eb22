"""Durability of a set: every acknowledged add survives, nothing appears from nowhere."""

from __future__ import annotations

import math
from typing import Any

from nodehost.testing import UNKNOWN, Operation, Verdict, check_durability


def add(client: int, x: Any, call: float, ret: float) -> Operation:
    return Operation(client, ("add", x), call, None, ret)


def read(client: int, seen: set[Any], call: float, ret: float) -> Operation:
    return Operation(client, ("read",), call, seen, ret)


def timed_out_add(client: int, x: Any, call: float) -> Operation:
    return Operation(client, ("add", x), call, UNKNOWN, math.inf)


def test_acknowledged_adds_in_the_final_read_pass() -> None:
    history = [add(0, 1, 0, 1), add(1, 2, 0, 2), timed_out_add(2, 3, 1), read(0, {1, 2}, 5, 6)]
    result = check_durability(history)
    assert result.ok, result.explanation


def test_a_timed_out_add_may_or_may_not_be_present() -> None:
    for seen in ({1}, {1, 3}):
        assert check_durability([add(0, 1, 0, 1), timed_out_add(2, 3, 1), read(0, seen, 5, 6)]).ok


def test_a_lost_acknowledged_add_fails() -> None:
    history = [add(0, 1, 0, 1), add(1, 2, 0, 2), read(0, {1}, 5, 6)]
    result = check_durability(history)
    assert result.verdict is Verdict.ILLEGAL
    assert "1 lost" in result.explanation and "add(2)" in result.explanation
    assert history[1] in result.operations


def test_an_add_still_running_when_the_read_began_may_be_missing() -> None:
    assert check_durability([add(0, 1, 0, 10), read(1, set(), 5, 6)]).ok


def test_an_element_nobody_added_fails() -> None:
    result = check_durability([add(0, 1, 0, 1), read(0, {1, 7}, 5, 6)])
    assert result.verdict is Verdict.ILLEGAL
    assert "invented: 7" in result.explanation


def test_an_element_added_only_after_the_read_returned_fails() -> None:
    result = check_durability([read(0, {1}, 0, 1), add(1, 1, 2, 3)])
    assert result.verdict is Verdict.ILLEGAL
    assert "1 invented" in result.explanation


def test_an_element_seen_once_cannot_vanish() -> None:
    history = [timed_out_add(0, 1, 0), read(1, {1}, 1, 2), read(1, set(), 3, 4)]
    result = check_durability(history)
    assert result.verdict is Verdict.ILLEGAL
    assert "1 vanished" in result.explanation
    # Overlapping reads are not ordered, so neither is required to contain the other.
    assert check_durability([timed_out_add(0, 1, 0), read(1, {1}, 1, 3), read(2, set(), 2, 4)]).ok


def test_unanswered_reads_are_ignored() -> None:
    history = [add(0, 1, 0, 1), Operation(1, ("read",), 2, UNKNOWN, math.inf)]
    assert check_durability(history).ok
