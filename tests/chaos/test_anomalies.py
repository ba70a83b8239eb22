"""Each anomaly is named from the operations that prove it, and concurrency is never
mistaken for one (the histories here are small and hand-made; times in seconds)."""

from __future__ import annotations

import math
from typing import Any

from nodehost.testing import UNKNOWN, Operation
from tests.chaos import anomalies
from tests.chaos.anomalies import Kind

FINAL = 900


def put(client: int, value: str, call: float, ret: float) -> Operation:
    return Operation(client, ("put", "k", value), call, None, ret)


def get(client: int, value: Any, call: float, ret: float) -> Operation:
    return Operation(client, ("get", "k"), call, value, ret)


def finals(*values: Any, at: float = 100.0) -> list[Operation]:
    return [get(FINAL + i, v, at, at + 1) for i, v in enumerate(values)]


def kinds(found: list[anomalies.Finding]) -> list[Kind]:
    return sorted({f.kind for f in found})


def test_a_register_write_the_final_state_skips_is_lost() -> None:
    ops = [put(1, "a", 0, 1), put(2, "b", 2, 3)]
    found = anomalies.registers("k", ops, finals("a", "a", "b"), 0.0)
    # The final reads of a miss b, but b is lost: they are consistent with the loss.
    assert kinds(found) == [Kind.LOST_WRITE]
    assert len(found) == 1 and "'b'" in found[0].detail


def test_a_register_read_behind_a_surviving_write_is_stale() -> None:
    ops = [put(1, "a", 0, 1), put(2, "b", 2, 3), get(3, "a", 4, 5)]
    found = anomalies.registers("k", ops, finals("b", "b", "b"), 0.0)
    assert kinds(found) == [Kind.STALE_READ]
    assert "misses put('k', 'b')" in found[0].detail


def test_a_read_concurrent_with_the_newer_write_is_no_anomaly() -> None:
    ops = [put(1, "a", 0, 1), put(2, "b", 2, 5), get(3, "a", 4, 6)]
    assert anomalies.registers("k", ops, finals("b", "b"), 0.0) == []


def test_a_write_shown_by_a_read_counts_as_acknowledged() -> None:
    timed_out = Operation(2, ("put", "k", "b"), 2, UNKNOWN, math.inf)
    ops = [put(1, "a", 0, 1), timed_out, get(3, "b", 3, 4)]
    assert kinds(anomalies.registers("k", ops, finals("a", "a"), 0.0)) == [Kind.LOST_WRITE]
    assert kinds(anomalies.registers("k", [*ops, get(4, "a", 5, 6)], finals("b"), 0.0)) == [
        Kind.STALE_READ
    ]


def test_absent_after_a_timed_out_delete_proves_nothing() -> None:
    delete = Operation(2, ("delete", "k"), 2, UNKNOWN, math.inf)
    ops = [put(1, "a", 0, 1), delete, get(3, None, 4, 5)]
    assert anomalies.registers("k", ops, finals(None), 0.0) == []


def test_a_value_never_written_is_named() -> None:
    found = anomalies.registers("k", [get(1, "zz", 0, 1)], finals(None), 0.0)
    assert kinds(found) == [Kind.INVENTED]


def add(client: int, x: str, call: float, ret: float) -> Operation:
    return Operation(client, ("add", "s", x), call, None, ret)


def shown(client: int, xs: list[str], call: float, ret: float) -> tuple[Operation, list[str]]:
    return Operation(client, ("read",), call, frozenset(xs), ret), xs


def final_sets(*lists: list[str]) -> list[tuple[Operation, list[str]]]:
    return [shown(FINAL + i, xs, 100.0, 101.0) for i, xs in enumerate(lists)]


def test_an_element_missing_from_most_final_reads_is_lost() -> None:
    found = anomalies.grow_only(
        "s", [add(1, "x", 0, 1), add(2, "y", 0, 1)], [], final_sets(["x"], ["x"], ["x", "y"]), 0.0
    )
    assert kinds(found) == [Kind.LOST_WRITE]
    assert "'y'" in found[0].detail


def test_an_element_missing_from_one_final_read_of_three_is_a_stale_read() -> None:
    found = anomalies.grow_only("s", [add(1, "x", 0, 1)], [], final_sets(["x"], [], ["x"]), 0.0)
    assert kinds(found) == [Kind.STALE_READ]


def test_an_element_shown_twice_was_applied_twice() -> None:
    found = anomalies.grow_only("s", [add(1, "x", 0, 1)], [], final_sets(["x", "x"]), 0.0)
    assert kinds(found) == [Kind.APPLIED_TWICE]


def test_an_element_shown_before_its_add_was_invoked_is_invented() -> None:
    found = anomalies.grow_only(
        "s", [add(1, "x", 5, 6)], [shown(2, ["x"], 0, 1)], final_sets(["x"]), 0.0
    )
    assert kinds(found) == [Kind.INVENTED]


def test_a_timed_out_add_seen_once_then_gone_is_lost() -> None:
    timed_out = Operation(1, ("add", "s", "x"), 0, UNKNOWN, math.inf)
    found = anomalies.grow_only("s", [timed_out], [shown(2, ["x"], 1, 2)], final_sets([], []), 0.0)
    assert kinds(found) == [Kind.LOST_WRITE]
    assert "shown by a read" in found[0].detail


def test_a_read_concurrent_with_an_add_may_miss_it() -> None:
    found = anomalies.grow_only(
        "s", [add(1, "x", 0, 3)], [shown(2, [], 1, 2)], final_sets(["x"], ["x"]), 0.0
    )
    assert found == []


def test_two_leaders_in_one_term_are_named_and_one_leader_many_times_is_not() -> None:
    reports = [(1, 5, 2, 1), (1, 5, 2, 2), (1, 5, 2, 3), (1, 6, 3, 1), (1, 6, 1, 1), (2, 6, 1, 2)]
    found = anomalies.leaders(reports)
    assert [(f.kind, f.key) for f in found] == [(Kind.TWO_LEADERS, "shard 1")]
    assert "term 6" in found[0].detail


def test_summaries_count_per_kind() -> None:
    found = [
        anomalies.Finding(Kind.STALE_READ, "a", "first"),
        anomalies.Finding(Kind.STALE_READ, "b", "second"),
        anomalies.Finding(Kind.LOST_WRITE, "a", "gone"),
    ]
    lines = anomalies.summarize(found)
    assert lines[Kind.STALE_READ] == "2 on 2 keys; first on a: first"
    assert lines[Kind.LOST_WRITE].startswith("1 on 1 keys")
