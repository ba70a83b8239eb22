"""The client side of a session (Raft thesis 6.3): who is proposing, and which proposal.

Rules:
- A session belongs to one shard and one client thread; it is not thread-safe.
- `client_id` is random and never 0 (0 marks entries of no session, such as a new
  leader's no-op). The series id says what an entry is: 0 for a no-op session (no
  deduplication), the two top values for register and unregister, and 1, 2, ... for
  the proposals of a registered session.
- A registered session proposes one series id at a time: after a proposal completes
  (or the caller gives up on it), `proposal_completed` moves to the next one and tells
  the replicas, through `responded_to`, that they may forget the older results. A
  proposal that timed out is retried with the same series id, so it applies at most once.
"""

from __future__ import annotations

import random

SERIES_ID_NOOP = 0
SERIES_ID_FIRST_PROPOSAL = 1
SERIES_ID_REGISTER = 2**64 - 2
SERIES_ID_UNREGISTER = 2**64 - 1
NOT_SESSION_MANAGED_CLIENT_ID = 0


class Session:
    """A client's identity and progress within one shard (Dragonboat's client.Session)."""

    __slots__ = ("client_id", "responded_to", "series_id", "shard_id")

    def __init__(
        self, shard_id: int, client_id: int, series_id: int, responded_to: int = 0
    ) -> None:
        self.shard_id = shard_id
        self.client_id = client_id
        self.series_id = series_id
        self.responded_to = responded_to

    @classmethod
    def noop(cls, shard_id: int, rng: random.Random) -> Session:
        """A session that is never registered and never deduplicated: safe to share."""
        return cls(shard_id, _random_client_id(rng), SERIES_ID_NOOP)

    @classmethod
    def new(cls, shard_id: int, rng: random.Random) -> Session:
        """A fresh session, ready to be proposed for registration."""
        session = cls(shard_id, _random_client_id(rng), SERIES_ID_FIRST_PROPOSAL)
        session.prepare_for_register()
        return session

    def is_noop(self) -> bool:
        return self.series_id == SERIES_ID_NOOP

    def prepare_for_register(self) -> None:
        self._must_be_regular()
        self.series_id = SERIES_ID_REGISTER

    def prepare_for_unregister(self) -> None:
        self._must_be_regular()
        self.series_id = SERIES_ID_UNREGISTER

    def registered(self) -> None:
        """The registration was applied: the next proposal is the first of the series."""
        self._must_be_regular()
        self.series_id = SERIES_ID_FIRST_PROPOSAL

    def proposal_completed(self) -> None:
        """The current proposal got its result (or was abandoned): move to the next.

        A no-op session has nothing to advance, so this is a no-op for it.
        """
        if self.is_noop():
            return
        self._must_be_regular()
        if self.series_id in (SERIES_ID_REGISTER, SERIES_ID_UNREGISTER):
            raise ValueError("the session is being registered or unregistered, not proposing")
        if self.series_id != self.responded_to + 1:
            raise ValueError(
                f"session {self.client_id}: series {self.series_id} does not follow "
                f"responded-to {self.responded_to}"
            )
        self.responded_to = self.series_id
        self.series_id += 1

    def valid_for_proposal(self, shard_id: int) -> bool:
        """Whether a user command may be proposed with this session on `shard_id`."""
        if self.shard_id != shard_id or self.client_id == NOT_SESSION_MANAGED_CLIENT_ID:
            return False
        if self.series_id in (SERIES_ID_REGISTER, SERIES_ID_UNREGISTER):
            return False
        return self.responded_to <= self.series_id

    def valid_for_session_op(self, shard_id: int) -> bool:
        """Whether this session may be proposed for registration or unregistration."""
        if self.shard_id != shard_id or self.client_id == NOT_SESSION_MANAGED_CLIENT_ID:
            return False
        return self.series_id in (SERIES_ID_REGISTER, SERIES_ID_UNREGISTER)

    def __repr__(self) -> str:
        return (
            f"Session(shard_id={self.shard_id}, client_id={self.client_id}, "
            f"series_id={self.series_id}, responded_to={self.responded_to})"
        )

    def _must_be_regular(self) -> None:
        if self.client_id == NOT_SESSION_MANAGED_CLIENT_ID or self.series_id == SERIES_ID_NOOP:
            raise ValueError("a no-op session is never registered, unregistered or advanced")


def _random_client_id(rng: random.Random) -> int:
    while True:
        client_id = rng.getrandbits(64)
        if client_id != NOT_SESSION_MANAGED_CLIENT_ID:
            return client_id
