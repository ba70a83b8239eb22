"""The client session: identities, series ids, and what may be proposed with it."""

from __future__ import annotations

import random

import pytest

from nodehost.rsm import (
    SERIES_ID_FIRST_PROPOSAL,
    SERIES_ID_NOOP,
    SERIES_ID_REGISTER,
    SERIES_ID_UNREGISTER,
    Session,
)


def test_noop_session_has_a_client_id_and_no_series() -> None:
    s = Session.noop(7, random.Random(1))
    assert s.is_noop() and s.client_id != 0 and s.series_id == SERIES_ID_NOOP
    assert s.valid_for_proposal(7) and not s.valid_for_proposal(8)
    assert not s.valid_for_session_op(7)
    s.proposal_completed()  # nothing to advance
    assert s.series_id == SERIES_ID_NOOP and s.responded_to == 0
    with pytest.raises(ValueError):
        s.prepare_for_register()


def test_client_id_is_never_zero() -> None:
    class ZeroFirst(random.Random):
        def __init__(self) -> None:
            super().__init__(3)
            self.calls = 0

        def getrandbits(self, k: int) -> int:
            self.calls += 1
            return 0 if self.calls == 1 else super().getrandbits(k)

    rng = ZeroFirst()
    assert Session.new(1, rng).client_id != 0 and rng.calls == 2


def test_registered_session_walks_its_series() -> None:
    s = Session.new(3, random.Random(2))
    assert s.series_id == SERIES_ID_REGISTER
    assert s.valid_for_session_op(3) and not s.valid_for_proposal(3)
    with pytest.raises(ValueError):
        s.proposal_completed()
    s.registered()
    assert s.series_id == SERIES_ID_FIRST_PROPOSAL and s.valid_for_proposal(3)
    s.proposal_completed()
    s.proposal_completed()
    assert (s.series_id, s.responded_to) == (3, 2)
    s.prepare_for_unregister()
    assert s.series_id == SERIES_ID_UNREGISTER and s.valid_for_session_op(3)


def test_sessions_from_different_seeds_differ() -> None:
    ids = {Session.new(1, random.Random(seed)).client_id for seed in range(50)}
    assert len(ids) == 50
