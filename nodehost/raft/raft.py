"""The Raft protocol for one replica: a deterministic state machine over messages.

Rules:
- No IO, no clock, no global random: time is `tick()`, randomness the injected
  `random.Random`, and every other input a `pb.Message` given to `step` (proposals and
  reads have direct entry points only to skip building a message on the hot path;
  `step(PROPOSE)` and `step(BATCHED_READ_INDEX)` do the same thing).
- Output accumulates in `msgs` (sent after the caller saved the Update), `replicate`
  (what may leave before the save: a leader's REPLICATE and HEARTBEAT, thesis 10.2.1,
  and a follower's forwarded proposals and ReadIndex requests, which carry nothing it
  must have saved), `ready_reads`, `dropped_entries` and `dropped_reads`; `Peer` packs
  them.
- `step` settles the term first (thesis 3.3), then dispatches through `HANDLERS`,
  one table keyed by (Role, MessageType). A missing cell means "ignore".
- Membership changes take effect when their entry commits (etcd, dragonboat), through
  `membership.check` and `membership.apply`, exactly as the state machine layer
  applies them later, so both always agree.

`Raft` is assembled from one mixin per concern, over the shared state of core.py:
elections.py (timer, votes, check-quorum), replication.py (proposals, AppendEntries
both ways, commit), reconfig.py (membership as of the commit index), reads.py
(ReadIndex), transfer.py (leadership transfer, a removed leader's hand-over) and
pacing.py (rate limiting, quiesce). What stays here is what crosses all of them: the
two entry points, `tick` and `step`, the leader's timers, and the dispatch table, so
that every (role, message) pair and the module that owns its handler read in one place.
Mixins add no cost per call: a method found through the class hierarchy is looked up
once and cached, like one defined on `Raft` itself.
"""

from __future__ import annotations

from collections.abc import Callable

from protos import raft_pb2 as pb

from .core import Role
from .elections import Elections
from .messages import FROM_LEADER_TYPES, MessageType
from .pacing import Pacing
from .reads import Reads
from .reconfig import Reconfiguration
from .replication import ProposalResult, Replication
from .transfer import LeaderTransfer

__all__ = ["HANDLERS", "MAX_APPLY_BYTES", "Handler", "ProposalResult", "Raft", "Role"]

MT = MessageType
Handler = Callable[["Raft", pb.Message], None]
# Entries handed out for applying in one Update, at most (at least one entry).
MAX_APPLY_BYTES = 64 * 1024 * 1024


class Raft(Elections, Replication, Reconfiguration, Reads, LeaderTransfer, Pacing):
    # ------------------------------------------------------------------ input

    def tick(self) -> bool:
        """One tick of logical time; False when it surely made no work for the caller
        (so an engine with thousands of idle replicas may skip their has_update)."""
        if self.quiesce_on:
            q = self.quiesce
            if q.quiesced_since >= 0:
                q.now += 1
                return False
            if self.leader_id == 0:
                # No leader known: keep the election timer running. A shard whose
                # replicas all fell asleep leaderless would stay so until a client
                # happened to wake it.
                q.activity()
            if q.tick():
                return self._enter_quiesce()
        self.tick_count += 1
        work = False
        if self.limit_on and self.limiter.tick() and self.role is not Role.LEADER:
            work = self._report_rate()
        if self.role is Role.LEADER:
            return self._tick_leader() or work
        return self._tick_election() or work

    def step(self, m: pb.Message) -> None:
        to = m.to
        if to and to != self.replica_id:
            return
        mt = m.type
        if self.quiesce_on:
            self._note_activity(mt)
        term = m.term
        if term:
            if term > self.term:
                if mt == pb.REQUEST_VOTE or mt == pb.REQUEST_PRE_VOTE:
                    transfer = mt == pb.REQUEST_VOTE and m.hint == m.from_id
                    if (
                        (self.config.check_quorum or m.from_id in self.membership.removed)
                        and self._in_lease()
                        and not transfer
                    ):
                        # Heard from a live leader within the election timeout: this
                        # candidate is disruptive, not needed (thesis 4.2.3).
                        return
                if mt == pb.REQUEST_PRE_VOTE or (mt == pb.REQUEST_PRE_VOTE_RESP and not m.reject):
                    pass  # a pre-vote never changes anyone's term
                else:
                    self.become_follower(term, m.from_id if mt in FROM_LEADER_TYPES else 0)
            elif term < self.term:
                self._on_stale(m)
                return
        handler = self._handlers.get(mt)
        if handler is not None:
            handler(self, m)

    def _on_stale(self, m: pb.Message) -> None:
        mt = m.type
        if mt == pb.REPLICATE or mt == pb.HEARTBEAT:
            # A leader of an older term: tell it our term so it steps down. With
            # check-quorum or pre-vote our vote requests may never reach it.
            self._send(pb.REPLICATE_RESP, m.from_id)
        elif mt == pb.REQUEST_PRE_VOTE or mt == pb.REQUEST_VOTE:
            # Refuse, naming our term (thesis figure 3.1): a candidate behind us learns
            # it and can campaign again in a term we can vote in. Needed when we cannot
            # campaign ourselves to pull it up (a witness, a replica that knows no
            # membership yet).
            answer = pb.REQUEST_PRE_VOTE_RESP if mt == pb.REQUEST_PRE_VOTE else pb.REQUEST_VOTE_RESP
            self._send(answer, m.from_id, reject=True)

    # ------------------------------------------------------------------ ticks

    def _tick_leader(self) -> bool:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        work = False
        if self.election_elapsed >= self.election_timeout:
            self.election_elapsed = 0
            if self.config.check_quorum and not self._quorum_active():
                # Cannot reach a majority: step down rather than serve as a leader
                # that may already be replaced (thesis 6.2).
                self.become_follower(self.term, 0)
                return True
            if self.transfer_target:
                self.transfer_target = 0  # the target did not take over in time
            if self.removed:
                self._hand_over()
            for read in self.reads.expire(self.tick_count, 2 * self.election_timeout):
                self._reject_read(read)
            work = True
        if self.heartbeat_elapsed >= self.heartbeat_timeout:
            self.heartbeat_elapsed = 0
            if self.progress:
                self._broadcast_heartbeat()
                work = True
        return work

    def _handle_local_tick(self, m: pb.Message) -> None:
        self.tick()


# ---------------------------------------------------------------------- dispatch

_ALL = tuple(Role)
_NOT_LEADER = (Role.FOLLOWER, Role.PRE_CANDIDATE, Role.CANDIDATE, Role.NON_VOTING, Role.WITNESS)
_FOLLOWING = (Role.FOLLOWER, Role.NON_VOTING, Role.WITNESS)
# Non-voting replicas answer vote requests too: one promoted to voter that has not yet
# learned so may be needed to elect a leader. Its answer counts only for a candidate
# that knows it votes (etcd does the same for learners).
_VOTING = _ALL
_CAMPAIGNING = (Role.FOLLOWER, Role.PRE_CANDIDATE, Role.CANDIDATE)


def _table() -> dict[tuple[Role, MessageType], Handler]:
    # Grouped by the module that owns the handler.
    rows: list[tuple[tuple[Role, ...], MessageType, Handler]] = [
        # here: time, and the leader's timers when they arrive as messages
        (_ALL, MT.LOCAL_TICK, Raft._handle_local_tick),
        ((Role.LEADER,), MT.LEADER_HEARTBEAT, lambda r, m: r._broadcast_heartbeat()),
        (
            (Role.LEADER,),
            MT.CHECK_QUORUM,
            lambda r, m: None if r._quorum_active() else r.become_follower(r.term, 0),
        ),
        # elections.py
        (_CAMPAIGNING, MT.ELECTION, Elections._handle_election),
        (_VOTING, MT.REQUEST_VOTE, Elections._handle_vote),
        (_VOTING, MT.REQUEST_PRE_VOTE, Elections._handle_vote),
        ((Role.CANDIDATE,), MT.REQUEST_VOTE_RESP, Elections._handle_vote_resp),
        ((Role.PRE_CANDIDATE,), MT.REQUEST_PRE_VOTE_RESP, Elections._handle_vote_resp),
        ((Role.FOLLOWER,), MT.TIMEOUT_NOW, Elections._handle_timeout_now),
        # replication.py
        (_ALL, MT.PROPOSE, Replication._handle_propose),
        ((Role.LEADER,), MT.PROPOSE_FORWARD, Replication._handle_propose_forward),
        ((Role.LEADER,), MT.REPLICATE_RESP, Replication._handle_replicate_resp),
        ((Role.LEADER,), MT.HEARTBEAT_RESP, Replication._handle_heartbeat_resp),
        ((Role.LEADER,), MT.SNAPSHOT_STATUS, Replication._handle_snapshot_status),
        ((Role.LEADER,), MT.UNREACHABLE, Replication._handle_unreachable),
        (_NOT_LEADER, MT.REPLICATE, Replication._handle_replicate),
        (_NOT_LEADER, MT.HEARTBEAT, Replication._handle_heartbeat),
        (_NOT_LEADER, MT.INSTALL_SNAPSHOT, Replication._handle_install_snapshot),
        # reads.py
        (_ALL, MT.BATCHED_READ_INDEX, Reads._handle_batched_read_index),
        ((Role.LEADER,), MT.READ_INDEX, Reads._handle_read_index),
        (_NOT_LEADER, MT.READ_INDEX, Reads._handle_not_leader_read_index),
        (_ALL, MT.READ_INDEX_RESP, Reads._handle_read_index_resp),
        # transfer.py
        ((Role.LEADER,), MT.LEADER_TRANSFER, LeaderTransfer._handle_leader_transfer),
        (_FOLLOWING, MT.LEADER_TRANSFER, LeaderTransfer._handle_forward_leader_transfer),
        # pacing.py
        ((Role.LEADER,), MT.RATE_LIMIT, Pacing._handle_leader_rate_limit),
        (_FOLLOWING, MT.RATE_LIMIT, Pacing._handle_follower_rate_limit),
        (_FOLLOWING, MT.QUIESCE, Pacing._handle_quiesce),
    ]
    table: dict[tuple[Role, MessageType], Handler] = {}
    for roles, mt, handler in rows:
        for role in roles:
            if (role, mt) in table:
                raise RuntimeError(f"two handlers for {role.name} {mt.name}")
            table[(role, mt)] = handler
    return table


HANDLERS: dict[tuple[Role, MessageType], Handler] = _table()
# What `_set_role` switches `step` to: one role's row of the table, by message type.
Raft._by_role = {role: {mt: h for (r, mt), h in HANDLERS.items() if r is role} for role in Role}
