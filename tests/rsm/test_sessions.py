"""The replicated session table: LRU eviction, forgetting, and its canonical encoding."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nodehost.rsm.sessions import ClientSession, SessionTable, SessionTableCorrupt
from statemachine import Result


def test_least_recently_used_session_is_evicted() -> None:
    t = SessionTable(capacity=3)
    for c in (1, 2, 3):
        assert t.register(c)
    assert t.get(1) is not None  # 2 is now the least recently used
    assert t.register(4)
    assert 2 not in t and {1, 3, 4} == {c for c in (1, 2, 3, 4) if c in t}
    assert not t.register(3)  # exists: touched, not reset
    t.register(5)
    assert 1 not in t  # 1 was touched before 3 and 4


def test_results_are_forgotten_once_the_client_has_seen_them() -> None:
    s = ClientSession(9)
    s.add(1, Result(10))
    s.add(2, Result(20))
    s.add(3, Result(30))
    s.clear_to(2)
    assert s.cached(1) is None and s.cached(2) is None and s.cached(3) == Result(30)
    assert s.has_responded(2) and not s.has_responded(3)
    s.add(2, Result(99))  # learned late, already seen: dropped
    assert s.cached(2) is None
    with pytest.raises(AssertionError):
        s.add(3, Result(31))


def test_unregister_unknown_session_is_refused() -> None:
    t = SessionTable()
    assert not t.unregister(5)
    t.register(5)
    assert t.unregister(5) and 5 not in t


results = st.builds(Result, st.integers(min_value=-(2**80), max_value=2**80), st.binary(max_size=8))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(1, 2**64 - 1),
            st.integers(0, 5),
            st.dictionaries(st.integers(1, 2**64 - 3), results, max_size=4),
        ),
        max_size=6,
    )
)
def test_encoding_round_trips_and_is_canonical(
    sessions: list[tuple[int, int, dict[int, Result]]],
) -> None:
    t = SessionTable(capacity=10)
    for client_id, responded_to, history in sessions:
        if t.register(client_id):
            s = t.get(client_id)
            assert s is not None
            s.responded_to = responded_to
            for series_id in sorted(history, reverse=True):  # insertion order must not matter
                s.history[series_id] = history[series_id]
    encoded = t.encode()
    back = SessionTable.decode(encoded)
    assert back.encode() == encoded and back.digest() == t.digest()
    assert len(back) == len(t) and back.capacity == 10


def test_damaged_encoding_is_reported() -> None:
    t = SessionTable()
    t.register(1)
    s = t.get(1)
    assert s is not None
    s.add(1, Result(5, b"abc"))
    encoded = t.encode()
    for cut in range(len(encoded)):
        with pytest.raises(SessionTableCorrupt):
            SessionTable.decode(encoded[:cut])
    with pytest.raises(SessionTableCorrupt):
        SessionTable.decode(encoded + b"\x00")
