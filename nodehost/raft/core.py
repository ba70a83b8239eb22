"""What every part of the Raft core shares: the replica's state, its role, `_send`.

`Raft` (raft.py) is one class assembled from mixins, one per concern of the protocol,
each in its own module: elections.py, replication.py, reconfig.py, reads.py,
transfer.py, pacing.py. This is their common base. It holds what all of them touch:
the fields, the role and the handler table that goes with it, the reset every role
change makes, and the one way a message is built.

Rules:
- Each mixin subclasses `RaftCore` alone, so it reads and type-checks by itself.
  A call from one concern into another goes through a seam declared at the end of
  this class and defined by the mixin named there; `Raft` has every mixin, so every
  seam resolves. Few calls cross: that is where the lines between modules are drawn.
- Nothing here or in the mixins does IO, reads a clock or the global `random`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from enum import IntEnum
from typing import TYPE_CHECKING, Any, ClassVar

from protos import raft_pb2 as pb

from .config import RaftConfig
from .log import RaftLog
from .progress import Progress
from .quiesce import Quiesce
from .ratelimit import RateLimiter
from .readindex import ReadIndexQueue
from .update import ReadContext, ReadyToRead

if TYPE_CHECKING:
    from .readindex import PendingRead


class Role(IntEnum):
    FOLLOWER = 0
    PRE_CANDIDATE = 1
    CANDIDATE = 2
    LEADER = 3
    NON_VOTING = 4
    WITNESS = 5


# A handler takes the assembled Raft (raft.py), which this base cannot name: Raft is made
# of the mixins that import this module. raft.py types its table with Raft itself.
AnyHandler = Callable[[Any, pb.Message], None]


class RaftCore:
    # Each role's handlers by message type; raft.py sets it once every mixin exists.
    _by_role: ClassVar[dict[Role, dict[int, AnyHandler]]]

    def __init__(
        self,
        config: RaftConfig,
        log: RaftLog,
        rng: random.Random,
        membership: pb.Membership,
        state: pb.State,
    ) -> None:
        if config.heartbeat_rtt < 1 or config.election_rtt <= config.heartbeat_rtt:
            raise ValueError(
                f"need 1 <= heartbeat_rtt < election_rtt, got heartbeat_rtt="
                f"{config.heartbeat_rtt}, election_rtt={config.election_rtt}"
            )
        if config.max_inflight < 1 or config.max_replicate_bytes < 1:
            raise ValueError("max_inflight and max_replicate_bytes must be positive")
        self.config = config
        self.replica_id = config.replica_id
        self.shard_id = config.shard_id
        self.log = log
        self.rng = rng
        self.term = state.term
        self.vote = state.vote
        self.leader_id = 0
        # The last index a REPLICATE of the current leader proved our log holds as the
        # leader's: how far that leader's heartbeats may move our commit index.
        self.leader_match = 0
        self.role = Role.FOLLOWER
        self._handlers = self._by_role[Role.FOLLOWER]
        self.membership = membership
        self.voters: frozenset[int] = frozenset()
        self.witnesses: frozenset[int] = frozenset()
        self.removed = False
        self.rescued_at = -config.election_rtt
        self.rescue_wait = config.election_rtt
        self.election_timeout = config.election_rtt
        self.heartbeat_timeout = config.heartbeat_rtt
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_timeout = self._random_timeout()
        self.tick_count = 0
        self.votes: dict[int, bool] = {}
        # Leader state.
        self.progress: dict[int, Progress] = {}
        self.self_match = 0
        self.term_committed = False
        self.transfer_target = 0
        self.reads = ReadIndexQueue()
        self.need_flush = False
        self.limiter = RateLimiter(config.max_in_mem_log_size, config.election_rtt)
        self.limit_on = config.max_in_mem_log_size > 0
        self.told_limited = False
        self.quiesce = Quiesce(config.quiesce, config.election_rtt, config.heartbeat_rtt)
        self.quiesce_on = config.quiesce
        # Output, drained by Peer.get_update.
        self.msgs: list[pb.Message] = []
        self.replicate: list[pb.Message] = []
        self.ready_reads: list[ReadyToRead] = []
        self.dropped_entries: list[pb.Entry] = []
        self.dropped_reads: list[ReadContext] = []
        # Membership as of the commit index: the snapshot's, then the committed
        # changes after it; later changes take effect if and when they commit.
        self._apply_committed_config_changes()
        self._membership_changed()
        self._set_role(self._base_role())

    # ------------------------------------------------------------------ roles

    def _set_role(self, role: Role) -> None:
        self.role = role
        self._handlers = self._by_role[role]

    def _base_role(self) -> Role:
        """What this replica is when it does not lead or campaign."""
        rid, m = self.replica_id, self.membership
        if rid in m.witnesses:
            return Role.WITNESS
        if rid in m.non_votings:
            return Role.NON_VOTING
        if rid in m.addresses:
            return Role.FOLLOWER
        if self.config.is_witness:
            return Role.WITNESS
        if self.config.is_non_voting:
            return Role.NON_VOTING
        return Role.FOLLOWER

    def promotable(self) -> bool:
        return (
            not self.removed
            and self.replica_id in self.membership.addresses
            and self.role is not Role.WITNESS
            and self.role is not Role.NON_VOTING
        )

    def _random_timeout(self) -> int:
        # Randomized in [election, 2 * election) so that split votes are rare (3.4).
        return self.election_timeout + self.rng.randrange(self.election_timeout)

    def _reset(self, term: int) -> None:
        if term != self.term:
            self.term = term
            self.vote = 0
        if self.role is Role.LEADER:
            self._abandon_reads()
            self.progress = {}
        self.leader_id = 0
        self.leader_match = 0
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_timeout = self._random_timeout()
        self.votes = {}
        self.transfer_target = 0
        self.need_flush = False
        self.limiter.reset()

    def become_follower(self, term: int, leader_id: int) -> None:
        self._reset(term)
        self._set_role(self._base_role())
        self.leader_id = leader_id

    def _members(self) -> list[int]:
        m = self.membership
        return [*m.addresses, *m.non_votings, *m.witnesses]

    def _in_lease(self) -> bool:
        return self.leader_id != 0 and self.election_elapsed < self.election_timeout

    # ------------------------------------------------------------------ output

    def _send(
        self,
        mt: pb.MessageType,
        to: int,
        *,
        term: int | None = None,
        log_index: int = 0,
        log_term: int = 0,
        commit: int = 0,
        reject: bool = False,
        hint: int = 0,
        hint_high: int = 0,
    ) -> None:
        m = pb.Message(
            type=mt,
            to=to,
            from_id=self.replica_id,
            shard_id=self.shard_id,
            term=self.term if term is None else term,
        )
        # Only the fields that are set: each one costs as much as the message itself.
        if log_index:
            m.log_index = log_index
        if log_term:
            m.log_term = log_term
        if commit:
            m.commit = commit
        if reject:
            m.reject = True
        if hint:
            m.hint = hint
        if hint_high:
            m.hint_high = hint_high
        self.msgs.append(m)

    def _present_membership(self, m: pb.Message) -> None:
        """Attach our membership to a message for a replica that may not know us yet
        (a replica joining, or one that missed the change adding us): it tells the
        receiver we are a member (admission.py) and where its answer goes. Only a
        voter presents one: a leader or a candidate."""
        if self.replica_id in self.membership.addresses:
            m.snapshot.membership.CopyFrom(self.membership)

    # ------------------------------------------------------------------ quiesce

    def _woke(self) -> None:
        """Activity after a quiet spell: start the timers afresh and count every
        follower alive, so that neither an election nor check-quorum fires at once.
        Here rather than in pacing.py because proposals, reads and transfers wake a
        replica too."""
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        for pr in self.progress.values():
            pr.active = True

    # ------------------------------------------------------------------ seams

    if TYPE_CHECKING:
        # Calls that cross from one concern into another, each defined in the module
        # named. Declared for the type checker only: at run time the mixin's own
        # method is the one there is.

        def _append(  # replication.py: a new leader's no-op entry
            self, entries: list[pb.Entry], config_changes: bool | None = None
        ) -> None: ...

        def _apply_committed_config_changes(self) -> None: ...  # reconfig.py

        def _membership_changed(self) -> None: ...  # reconfig.py

        def _release_read(self, read: PendingRead) -> None: ...  # reads.py

        def _abandon_reads(self) -> None: ...  # reads.py: a leader stepping down

        def _hand_over(self) -> None: ...  # transfer.py: a removed leader
