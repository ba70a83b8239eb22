"""When a member counts as departed: the clock of the leader's removal rule."""

from __future__ import annotations

from nodehost.discovery.departures import DepartureClock


def test_a_member_missing_for_remove_after_is_due() -> None:
    clock = DepartureClock(node_id=1, remove_after=10)
    assert clock.observe(0, {1, 2, 3}, present={1, 2}) is None
    assert clock.observe(9.9, {1, 2, 3}, present={1, 2}) is None
    assert clock.observe(10, {1, 2, 3}, present={1, 2}) == 3
    clock.removed(3)
    assert clock.observe(11, {1, 2}, present={1, 2}) is None


def test_coming_back_or_a_reset_starts_the_clock_again() -> None:
    clock = DepartureClock(node_id=1, remove_after=10)
    clock.observe(0, {1, 2, 3}, present={1, 2})
    clock.observe(5, {1, 2, 3}, present={1, 2, 3})  # back: forgotten
    assert clock.observe(12, {1, 2, 3}, present={1, 2}) is None
    clock.reset()  # e.g. a listed peer did not answer
    assert clock.observe(21, {1, 2, 3}, present={1, 2}) is None
    assert clock.observe(31, {1, 2, 3}, present={1, 2}) == 3


def test_never_this_node_and_one_at_a_time() -> None:
    clock = DepartureClock(node_id=1, remove_after=1)
    clock.observe(0, {1, 2, 3, 4}, present=set())
    assert clock.observe(5, {1, 2, 3, 4}, present=set()) == 2
    clock.removed(2)
    assert clock.observe(6, {1, 3, 4}, present=set()) == 3
    assert 1 not in clock.missing_since


def test_a_member_removed_by_someone_else_is_forgotten() -> None:
    clock = DepartureClock(node_id=1, remove_after=1)
    clock.observe(0, {1, 2}, present={1})
    assert clock.observe(5, {1}, present={1}) is None
    assert clock.missing_since == {}
