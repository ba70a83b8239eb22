"""The Raft protocol for one replica: a deterministic state machine over messages.

Rules:
- No IO, no clock, no global random: time is `tick()`, randomness the injected
  `random.Random`, and every other input a `pb.Message` given to `step` (proposals and
  reads have direct entry points only to skip building a message on the hot path;
  `step(PROPOSE)` and `step(BATCHED_READ_INDEX)` do the same thing).
- Output accumulates in `msgs` (sent after the caller saved the Update), `replicate`
  (a leader's REPLICATE and HEARTBEAT, which may leave before its own save, thesis
  10.2.1), `ready_reads`, `dropped_entries` and `dropped_reads`; `Peer` packs them.
- `step` settles the term first (thesis 3.3), then dispatches through `HANDLERS`,
  one table keyed by (Role, MessageType). A missing cell means "ignore".
- Membership changes take effect when their entry commits (etcd, dragonboat), through
  `membership.check` and `membership.apply`, exactly as the state machine layer
  applies them later, so both always agree.
- Known-bug switches (`RaftConfig.mutations`) are test-only and marked MUTATION.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from enum import IntEnum
from operator import attrgetter

from protos import raft_pb2 as pb

from . import membership as members
from .config import Mutation, RaftConfig
from .log import RaftLog
from .logreader import CompactedError
from .messages import FROM_LEADER_TYPES, MessageType
from .progress import Progress, ProgressState
from .quiesce import Quiesce
from .quorum import VoteResult, committed_index, quorum, vote_result
from .ratelimit import RateLimiter
from .readindex import PendingRead, ReadIndexQueue
from .update import ReadContext, ReadyToRead

MT = MessageType
CONFIG_CHANGE = pb.CONFIG_CHANGE
_TYPE = attrgetter("type")
# Entries handed out for applying in one Update, at most (at least one entry).
MAX_APPLY_BYTES = 64 * 1024 * 1024
# Byte budget that means "everything", for reads that must not be cut short.
UNBOUNDED = 1 << 62
# Kinds that do not count as activity for quiesce: a live idle shard makes them itself.
_QUIET_TYPES: frozenset[int] = frozenset({pb.LOCAL_TICK, pb.QUIESCE, pb.RATE_LIMIT})


class ProposalResult(IntEnum):
    """What `propose` did with a batch, at once (the Update says it again)."""

    APPENDED = 0  # in this leader's log; results come when the entries apply
    FORWARDED = 1  # sent to the leader this replica knows; no answer will come back
    DROPPED = 2  # some or all refused: see Update.dropped_entries (retry later)


class Role(IntEnum):
    FOLLOWER = 0
    PRE_CANDIDATE = 1
    CANDIDATE = 2
    LEADER = 3
    NON_VOTING = 4
    WITNESS = 5


Handler = Callable[["Raft", pb.Message], None]


class Raft:
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
        self.role = Role.FOLLOWER
        self._handlers = _BY_ROLE[Role.FOLLOWER]
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
        self.mutations = config.mutations
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
        self._handlers = _BY_ROLE[role]

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

    def _become_pre_candidate(self) -> None:
        # Pre-vote (thesis 9.6): ask first whether we could win, without raising our
        # term, so a replica rejoining after a partition does not depose a live leader.
        self._reset(self.term)
        self._set_role(Role.PRE_CANDIDATE)
        self.votes = {self.replica_id: True}
        self._request_votes(pre=True, transfer=False)

    def _become_candidate(self, transfer: bool) -> None:
        self._reset(self.term + 1)
        self.vote = self.replica_id
        self._set_role(Role.CANDIDATE)
        self.votes = {self.replica_id: True}
        self._request_votes(pre=False, transfer=transfer)

    def _become_leader(self) -> None:
        self._reset(self.term)
        self._set_role(Role.LEADER)
        self.leader_id = self.replica_id
        last = self.log.last_index()
        inflight = self.config.max_inflight
        self.progress = {
            rid: Progress(last + 1, inflight) for rid in self._members() if rid != self.replica_id
        }
        self.self_match = self.log.saved_to
        self.term_committed = False
        # A no-op entry of the new term (thesis 3.6.2, 6.4): committing it commits all
        # earlier entries, and tells us our commit index is the cluster's.
        self._append([pb.Entry()], False)
        if self.removed:
            self._hand_over()

    def _members(self) -> list[int]:
        m = self.membership
        return [*m.addresses, *m.non_votings, *m.witnesses]

    # ------------------------------------------------------------------ input

    def tick(self) -> bool:
        """One tick of logical time; False when it surely made no work for the caller
        (so an engine with thousands of idle replicas may skip their has_update)."""
        if self.quiesce_on:
            q = self.quiesce
            if q.quiesced_since >= 0:
                q.now += 1
                return False
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
        elif mt == pb.REQUEST_PRE_VOTE:
            self._send(pb.REQUEST_PRE_VOTE_RESP, m.from_id, reject=True)

    def _in_lease(self) -> bool:
        return self.leader_id != 0 and self.election_elapsed < self.election_timeout

    def _note_activity(self, mt: pb.MessageType) -> None:
        q = self.quiesce
        if mt == pb.HEARTBEAT or mt == pb.HEARTBEAT_RESP:
            woke = q.heartbeat()
        elif mt in _QUIET_TYPES:
            return
        else:
            woke = q.activity()
        if woke:
            self._woke()

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

    # ------------------------------------------------------------------ ticks

    def _tick_election(self) -> bool:
        self.election_elapsed += 1
        if self.election_elapsed < self.randomized_timeout:
            return False
        if self.promotable():
            self.election_elapsed = 0
            self._campaign(transfer=False)
            return True
        if self.removed:
            if self.role is not Role.FOLLOWER:
                self.become_follower(self.term, 0)  # a rescue campaign failed
            self._rescue()
            return True
        return False

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

    def _quorum_active(self) -> bool:
        active = 0
        for rid in self.voters:
            if rid == self.replica_id:
                active += 1
            else:
                pr = self.progress.get(rid)
                if pr is not None and pr.active:
                    active += 1
        for pr in self.progress.values():
            pr.active = False
        return active >= quorum(len(self.voters))

    # ------------------------------------------------------------------ elections

    def _campaign(self, transfer: bool, rescue: bool = False) -> None:
        if not self.promotable() and not rescue:
            return
        if (self.config.pre_vote or rescue) and not transfer:
            self._become_pre_candidate()
        else:
            self._become_candidate(transfer)

    def _request_votes(self, pre: bool, transfer: bool) -> None:
        if vote_result(self.voters, self.votes) is VoteResult.WON:
            self._won(pre)
            return
        mt = pb.REQUEST_PRE_VOTE if pre else pb.REQUEST_VOTE
        term = self.term + 1 if pre else self.term
        last = self.log.last_index()
        last_term = self.log.term(last)
        for rid in sorted(self.voters):
            if rid != self.replica_id:
                self._send(
                    mt,
                    rid,
                    term=term,
                    log_index=last,
                    log_term=last_term,
                    hint=self.replica_id if transfer else 0,
                )

    def _won(self, pre: bool) -> None:
        if pre:
            self._become_candidate(transfer=False)
        else:
            self._become_leader()

    def _handle_election(self, m: pb.Message) -> None:
        self._campaign(transfer=False)

    def _handle_vote(self, m: pb.Message) -> None:
        pre = m.type == pb.REQUEST_PRE_VOTE
        candidate = m.from_id
        if pre:
            # Grant only if we would not be waiting for a live leader ourselves.
            can_vote = m.term > self.term and not self._in_lease()
        else:
            can_vote = self.vote == candidate or (self.vote == 0 and self.leader_id == 0)
        up_to_date = self.log.up_to_date(m.log_index, m.log_term)
        if not up_to_date and self.removed and self.role is Role.FOLLOWER:
            self._rescue()
        if can_vote and up_to_date:
            if not pre:
                self.vote = candidate
                self.election_elapsed = 0
            self._send(
                pb.REQUEST_PRE_VOTE_RESP if pre else pb.REQUEST_VOTE_RESP, candidate, term=m.term
            )
        else:
            self._send(
                pb.REQUEST_PRE_VOTE_RESP if pre else pb.REQUEST_VOTE_RESP, candidate, reject=True
            )

    def _handle_vote_resp(self, m: pb.Message) -> None:
        if m.from_id not in self.voters:
            return
        self.votes.setdefault(m.from_id, not m.reject)
        result = vote_result(self.voters, self.votes)
        if result is VoteResult.WON:
            self._won(self.role is Role.PRE_CANDIDATE)
        elif result is VoteResult.LOST:
            self.become_follower(self.term, 0)

    def _rescue(self) -> None:
        """A removed replica heard no leader for an election timeout, or refused a
        candidate whose log is behind its own.

        The remaining voters may not know yet that our removal committed, or that they
        were added: then they still count us, cannot win without our vote, or cannot
        campaign at all, and our log may be the only one that can lead (a leader that
        removed itself and crashed before handing over). So we campaign, at most once
        per election timeout, always through pre-vote, and hand over if we win. Voters
        that hear from a live leader ignore a removed replica, so it cannot disrupt a
        shard that has one."""
        if self.tick_count - self.rescued_at >= self.rescue_wait and not self.config.is_witness:
            self.rescued_at = self.tick_count
            # Back off: a removed replica left running must not chatter forever.
            self.rescue_wait = min(2 * self.rescue_wait, 64 * self.election_timeout)
            self._campaign(transfer=False, rescue=True)

    def _handle_timeout_now(self, m: pb.Message) -> None:
        # Leader transfer (thesis 3.10): campaign at once, even inside the lease.
        self._campaign(transfer=True)

    # ------------------------------------------------------------------ proposals

    def propose(self, entries: list[pb.Entry]) -> ProposalResult:
        if self.removed:
            self.dropped_entries.extend(entries)
            return ProposalResult.DROPPED
        if self.quiesce_on and self.quiesce.activity():
            self._woke()
        role = self.role
        if role is Role.LEADER:
            return self._leader_propose(entries)
        if self.leader_id and role is not Role.CANDIDATE and role is not Role.PRE_CANDIDATE:
            m = pb.Message(
                type=pb.PROPOSE_FORWARD,
                to=self.leader_id,
                from_id=self.replica_id,
                shard_id=self.shard_id,
            )
            m.entries.extend(entries)
            self.msgs.append(m)
            return ProposalResult.FORWARDED
        self.dropped_entries.extend(entries)
        return ProposalResult.DROPPED

    def _handle_propose(self, m: pb.Message) -> None:
        self.propose(list(m.entries))

    def _handle_propose_forward(self, m: pb.Message) -> None:
        if not self.removed:
            self._leader_propose(list(m.entries))

    def _leader_propose(self, entries: list[pb.Entry]) -> ProposalResult:
        if self.transfer_target:
            # Leadership is moving (thesis 3.10): the new leader will take these.
            self.dropped_entries.extend(entries)
            return ProposalResult.DROPPED
        result = ProposalResult.APPENDED
        config_changes = CONFIG_CHANGE in map(_TYPE, entries)
        if config_changes:
            first = next(i for i, e in enumerate(entries) if e.type == CONFIG_CHANGE)
            admitted = self._admit_config_changes(entries, first)
            if len(admitted) < len(entries):
                result = ProposalResult.DROPPED
            entries = admitted
        if entries:
            self._append(entries, config_changes)
        return result

    def _admit_config_changes(self, entries: list[pb.Entry], first: int) -> list[pb.Entry]:
        """One change in flight at a time, and none before this leader committed an
        entry of its term: a change proposed on top of a previous leader's uncommitted
        one could form two disjoint majorities (Ongaro, raft-dev 2015)."""
        admitted = entries[:first]
        pending = bool(self.log.config_changes)
        for e in entries[first:]:
            if e.type == CONFIG_CHANGE:
                if pending or not self.term_committed:
                    self.dropped_entries.append(e)
                    continue
                pending = True
            admitted.append(e)
        return admitted

    def _append(self, entries: list[pb.Entry], config_changes: bool | None = None) -> None:
        log = self.log
        term = self.term
        index = log.last_index()
        for e in entries:
            index += 1
            e.term = term
            e.index = index
        log.append(entries, config_changes)
        self.need_flush = True

    # ------------------------------------------------------------------ replication (leader)

    def flush(self) -> None:
        """Send what the leader owes its followers: new entries, retries, commit news.

        Deferred to here so that everything proposed and acknowledged in one engine
        pass goes out as one REPLICATE per follower, not one per input."""
        self.need_flush = False
        if self.role is not Role.LEADER:
            return
        if self.reads.unsent:
            self._broadcast_heartbeat()
        log = self.log
        last = log.last_index()
        committed = log.committed
        # Followers at the same `next` get the same entries: build once, copy after.
        built: dict[tuple[int, bool], pb.Message] = {}
        for rid, pr in self.progress.items():
            if pr.is_paused():
                continue
            if pr.next <= last or pr.sent_commit < committed or pr.probe_due:
                self._send_append(rid, pr, last, committed, built)

    def _send_append(
        self,
        rid: int,
        pr: Progress,
        last: int,
        committed: int,
        built: dict[tuple[int, bool], pb.Message],
    ) -> None:
        log = self.log
        witness = rid in self.witnesses
        while True:
            nxt = pr.next
            key = (nxt, witness)
            template = built.get(key)
            if template is not None:
                m = pb.Message()
                m.CopyFrom(template)
                m.to = rid
                count = len(m.entries)
                sent_last = nxt + count - 1
            else:
                try:
                    prev_term = log.term(nxt - 1)
                    entries = log.entries(nxt, last + 1, self.config.max_replicate_bytes)
                except CompactedError:
                    self._send_snapshot(rid, pr)
                    return
                m = pb.Message(
                    type=pb.REPLICATE,
                    to=rid,
                    from_id=self.replica_id,
                    shard_id=self.shard_id,
                    term=self.term,
                    log_index=nxt - 1,
                    log_term=prev_term,
                    commit=committed,
                )
                if entries:
                    m.entries.extend(_for_witness(entries) if witness else entries)
                    # Tells the follower whether to look for config changes: most
                    # messages carry none, and scanning costs per entry.
                    if log.may_have_config_change(nxt, nxt + len(entries) - 1):
                        m.hint = 1
                built[key] = m
                count = len(entries)
                sent_last = nxt + count - 1
            if witness:
                # Only after we saved them: a witness cannot lead, so an entry only it
                # holds (we crashed before saving) would block every election it must
                # vote in: its log would be ahead of every replica that can win.
                self.msgs.append(m)
            else:
                self.replicate.append(m)
            pr.sent(sent_last, count)
            pr.sent_commit = committed
            pr.probe_due = False
            if count == 0 or pr.next > last or pr.is_paused():
                return

    def _send_snapshot(self, rid: int, pr: Progress) -> None:
        log = self.log
        ss = log.snapshot if log.snapshot is not None else log.reader.snapshot()
        if ss.index == 0:
            raise RuntimeError(
                f"replica {rid} needs entries below the first index {log.first_index()}, "
                "but there is no snapshot"
            )
        if rid in self.witnesses:
            ss = pb.Snapshot(
                shard_id=ss.shard_id,
                index=ss.index,
                term=ss.term,
                membership=ss.membership,
                type=ss.type,
                witness=True,
            )
        m = pb.Message(
            type=pb.INSTALL_SNAPSHOT,
            to=rid,
            from_id=self.replica_id,
            shard_id=self.shard_id,
            term=self.term,
            snapshot=ss,
        )
        self.msgs.append(m)
        pr.become_snapshot(ss.index)

    def _broadcast_heartbeat(self) -> None:
        ctx = self.reads.latest()
        low, high = (ctx.low, ctx.high) if ctx is not None else (0, 0)
        self.reads.unsent = False
        committed = self.log.committed
        for rid, pr in self.progress.items():
            self.replicate.append(
                pb.Message(
                    type=pb.HEARTBEAT,
                    to=rid,
                    from_id=self.replica_id,
                    shard_id=self.shard_id,
                    term=self.term,
                    # Never past what the follower is known to hold: its log beyond
                    # `match` may still differ from ours.
                    commit=min(pr.match, committed),
                    hint=low,
                    hint_high=high,
                )
            )

    def _handle_replicate_resp(self, m: pb.Message) -> None:
        pr = self.progress.get(m.from_id)
        if pr is None:
            return
        pr.active = True
        self.need_flush = True
        if m.reject:
            hint = m.hint
            if m.log_term:
                hint = self.log.find_conflict_by_term(hint, m.log_term)[0]
            pr.rejected(m.log_index, hint)
            return
        if not pr.acknowledged(m.log_index):
            return
        if pr.state is ProgressState.PROBE:
            pr.become_replicate()
        elif pr.state is ProgressState.SNAPSHOT and pr.match >= pr.snapshot_index:
            pr.become_probe()
            pr.become_replicate()
        target = self.transfer_target
        if pr.match > self.log.committed:
            self._try_commit()  # may start a transfer (a removed leader): not twice
        if m.from_id == target == self.transfer_target and pr.match == self.log.last_index():
            self._send(pb.TIMEOUT_NOW, m.from_id)

    def _handle_heartbeat_resp(self, m: pb.Message) -> None:
        pr = self.progress.get(m.from_id)
        if pr is None:
            return
        pr.active = True
        pr.paused = False
        if pr.state is ProgressState.REPLICATE and len(pr.inflight) >= pr.max_inflight:
            # A full window with a quiet follower: a REPLICATE may have been lost.
            pr.inflight.popleft()
        if pr.match < self.log.last_index():
            # Behind although everything may have been sent: send a (maybe empty)
            # REPLICATE after the ones in flight; if one was lost it is rejected and
            # the follower goes back to probing.
            pr.probe_due = True
            self.need_flush = True
        elif pr.sent_commit < self.log.committed:
            self.need_flush = True
        if m.hint or m.hint_high:
            ready = self.reads.confirm(m.hint, m.hint_high, m.from_id, self.replica_id, self.voters)
            for read in ready:
                self._release_read(read)

    def _handle_unreachable(self, m: pb.Message) -> None:
        pr = self.progress.get(m.from_id)
        if pr is not None and pr.state is ProgressState.REPLICATE:
            pr.become_probe()

    def _handle_snapshot_status(self, m: pb.Message) -> None:
        pr = self.progress.get(m.from_id)
        if pr is None or pr.state is not ProgressState.SNAPSHOT:
            return
        if m.reject:
            pr.snapshot_index = 0
        pr.become_probe()
        # Wait for the follower's answer (or a heartbeat's) before probing again.
        pr.paused = True

    def self_saved(self, saved_to: int) -> None:
        """The leader's own entries up to saved_to are durable: it may count itself."""
        if self.role is Role.LEADER and saved_to > self.self_match:
            self.self_match = saved_to
            if saved_to > self.log.committed:
                self._try_commit()

    def _try_commit(self) -> None:
        log = self.log
        while self.role is Role.LEADER:
            rid = self.replica_id
            progress = self.progress
            index = committed_index(
                [self.self_match if v == rid else progress[v].match for v in self.voters]
            )
            if index <= log.committed:
                return
            # Count replicas only for entries of our own term (thesis 3.6.2): an older
            # entry stored on a majority can still be overwritten by a future leader.
            # MUTATION (tests only): COMMIT_EARLIER_TERM_BY_COUNT commits it anyway,
            # the figure-8 bug.
            if (
                log.term(index) != self.term
                and Mutation.COMMIT_EARLIER_TERM_BY_COUNT not in self.mutations
            ):
                return
            self._commit_to(index)

    def _commit_to(self, index: int) -> None:
        log = self.log
        if not log.commit_to(index):
            return
        if log.config_changes and log.config_changes[0] <= index:
            self._apply_committed_config_changes()
            self._membership_changed()
        if self.role is Role.LEADER:
            self.need_flush = True
            if not self.term_committed and log.term(log.committed) == self.term:
                self.term_committed = True

    # ------------------------------------------------------------------ replication (follower)

    def _handle_replicate(self, m: pb.Message) -> None:
        leader = m.from_id
        if self.role is Role.CANDIDATE or self.role is Role.PRE_CANDIDATE:
            self.become_follower(self.term, leader)  # someone won this term (3.4)
        self.leader_id = leader
        self.election_elapsed = 0
        log = self.log
        prev = m.log_index
        committed = log.committed
        if prev < committed:
            self._reply(leader, committed)
            return
        mem = log.mem
        last = log.mem_offset + len(mem) - 1
        if prev == last and (mem[-1].term if mem else log.term(last)) == m.log_term:
            # The common case, kept short: the leader continues where our log ends.
            entries = m.entries
            if entries:
                log.append(entries, bool(m.hint))
                last = log.mem_offset + len(mem) - 1
        elif log.match_term(prev, m.log_term):
            entries = m.entries
            last = log.append_after(prev, list(entries), bool(m.hint)) if entries else prev
        else:
            # Fast back-off (etcd): name the last entry whose term is no newer than
            # the leader's, so it skips a whole run of entries we do not have.
            hint, hint_term = log.find_conflict_by_term(prev, m.log_term)
            self._send(
                pb.REPLICATE_RESP,
                leader,
                reject=True,
                log_index=prev,
                hint=hint,
                log_term=hint_term,
            )
            return
        # Commit only what the leader's message proved we hold (thesis 3.5).
        commit = m.commit
        if commit > last:
            commit = last
        if commit > committed:
            self._commit_to(commit)
        self._reply(leader, last)

    def _reply(self, leader: int, index: int) -> None:
        """Acknowledge our log up to index (sent after the caller saved it)."""
        self.msgs.append(
            pb.Message(
                type=pb.REPLICATE_RESP,
                to=leader,
                from_id=self.replica_id,
                shard_id=self.shard_id,
                term=self.term,
                log_index=index,
            )
        )

    def _handle_heartbeat(self, m: pb.Message) -> None:
        self._heard_from_leader(m)
        self._commit_to(min(m.commit, self.log.last_index()))
        self._send(pb.HEARTBEAT_RESP, m.from_id, hint=m.hint, hint_high=m.hint_high)

    def _handle_install_snapshot(self, m: pb.Message) -> None:
        self._heard_from_leader(m)
        if self.restore(m.snapshot):
            self._send(pb.REPLICATE_RESP, m.from_id, log_index=self.log.last_index())
        else:
            self._send(pb.REPLICATE_RESP, m.from_id, log_index=self.log.committed)

    def _heard_from_leader(self, m: pb.Message) -> None:
        if self.role is Role.CANDIDATE or self.role is Role.PRE_CANDIDATE:
            # Someone won this term (thesis 3.4).
            self.become_follower(self.term, m.from_id)
        self.leader_id = m.from_id
        self.election_elapsed = 0

    def restore(self, snapshot: pb.Snapshot) -> bool:
        """Take a leader's snapshot; False when our log already covers it."""
        log = self.log
        if self.role is Role.LEADER or snapshot.index <= log.committed:
            return False
        if log.match_term(snapshot.index, snapshot.term):
            # We hold the entry the snapshot ends with, so our log matches up to it:
            # keep the entries after it and just commit (thesis 5.1).
            self._commit_to(snapshot.index)
            return False
        log.restore(snapshot)
        self.membership = pb.Membership()
        self.membership.CopyFrom(snapshot.membership)
        self._membership_changed()
        return True

    # ------------------------------------------------------------------ membership

    def _apply_committed_config_changes(self) -> None:
        log = self.log
        pending = log.config_changes
        ordered = self.config.ordered_config_change
        while pending and pending[0] <= log.committed:
            index = pending.pop(0)
            entry = log.entries(index, index + 1, UNBOUNDED)[0]
            cc = pb.ConfigChange.FromString(entry.cmd)
            if members.check(self.membership, cc, ordered) is None:
                members.apply(self.membership, cc, index)

    def _membership_changed(self) -> None:
        m = self.membership
        self.voters = frozenset([*m.addresses, *m.witnesses])
        self.witnesses = frozenset(m.witnesses)
        if self.replica_id in m.removed:
            self.removed = True
        if self.role is Role.LEADER:
            members_now = set(self._members())
            members_now.discard(self.replica_id)
            committed = self.log.committed
            for rid in list(self.progress):
                if rid not in members_now:
                    # A last word, so that it usually learns it was removed and stays
                    # quiet: an empty REPLICATE that commits, if its log matches ours
                    # at our commit index. We will not talk to it again.
                    del self.progress[rid]
                    term = self.log.term(committed)
                    self._send(
                        pb.REPLICATE, rid, log_index=committed, log_term=term, commit=committed
                    )
            last = self.log.last_index()
            for rid in members_now:
                if rid not in self.progress:
                    self.progress[rid] = Progress(last + 1, self.config.max_inflight)
            if self.transfer_target and self.transfer_target not in m.addresses:
                self.transfer_target = 0
            self.need_flush = True
            if self.removed:
                self._hand_over()
        elif self.role is not Role.CANDIDATE and self.role is not Role.PRE_CANDIDATE:
            self._set_role(self._base_role())

    def _hand_over(self) -> None:
        """A removed leader keeps leading only to pass leadership on.

        Stepping down at once could strand the remaining voters: those that have not
        learned that our removal committed still count us, and our log may be longer
        than theirs, so they can neither win our vote nor do without it. So we keep
        replicating (without counting ourselves), refuse new work, and send TIMEOUT_NOW
        to the most caught-up voter (thesis 3.10 mechanics); retried every election
        timeout until someone takes over."""
        if self.transfer_target:
            return
        candidates = [
            (pr.match, -rid)
            for rid, pr in self.progress.items()
            if rid in self.membership.addresses
        ]
        if candidates:
            self._start_transfer(-max(candidates)[1])

    # ------------------------------------------------------------------ ReadIndex

    def read_index(self, ctx: ReadContext) -> None:
        if self.removed:
            self.dropped_reads.append(ctx)
            return
        if self.quiesce_on and self.quiesce.activity():
            self._woke()
        role = self.role
        if role is Role.LEADER:
            self._leader_read(ctx, self.replica_id)
        elif self.leader_id and role is not Role.CANDIDATE and role is not Role.PRE_CANDIDATE:
            if Mutation.FOLLOWER_READ_WITHOUT_READ_INDEX in self.mutations:
                # MUTATION: serve at our own commit index without asking the leader;
                # stale as soon as the leader commits something we have not heard of.
                self.ready_reads.append(ReadyToRead(ctx, self.log.committed))
                return
            self.msgs.append(
                pb.Message(
                    type=pb.READ_INDEX,
                    to=self.leader_id,
                    from_id=self.replica_id,
                    shard_id=self.shard_id,
                    hint=ctx.low,
                    hint_high=ctx.high,
                )
            )
        else:
            self.dropped_reads.append(ctx)

    def _handle_batched_read_index(self, m: pb.Message) -> None:
        self.read_index(ReadContext(m.hint, m.hint_high))

    def _handle_read_index(self, m: pb.Message) -> None:
        self._leader_read(ReadContext(m.hint, m.hint_high), m.from_id)

    def _leader_read(self, ctx: ReadContext, from_id: int) -> None:
        read = PendingRead(ctx, self.log.committed, from_id, self.tick_count)
        if self.removed:
            self._reject_read(read)
            return
        # Our commit index may be behind the cluster's until an entry of our term
        # commits (thesis 6.4, etcd #7331): the caller retries (ShardNotReady).
        # MUTATION (tests only): READ_INDEX_BEFORE_FIRST_COMMIT serves it anyway.
        if (
            not self.term_committed
            and Mutation.READ_INDEX_BEFORE_FIRST_COMMIT not in self.mutations
        ):
            self._reject_read(read)
            return
        if self.voters == {self.replica_id}:
            self._release_read(read)
            return
        self.reads.add(ctx, read.index, from_id, self.tick_count)
        self.need_flush = True

    def _release_read(self, read: PendingRead) -> None:
        if read.from_id == self.replica_id:
            self.ready_reads.append(ReadyToRead(read.context, read.index))
        else:
            ctx = read.context
            self._send(
                pb.READ_INDEX_RESP,
                read.from_id,
                log_index=read.index,
                hint=ctx.low,
                hint_high=ctx.high,
            )

    def _reject_read(self, read: PendingRead) -> None:
        if read.from_id == self.replica_id:
            self.dropped_reads.append(read.context)
        else:
            ctx = read.context
            self._send(
                pb.READ_INDEX_RESP, read.from_id, reject=True, hint=ctx.low, hint_high=ctx.high
            )

    def _abandon_reads(self) -> None:
        for read in self.reads.drain():
            self._reject_read(read)

    def _handle_not_leader_read_index(self, m: pb.Message) -> None:
        self._send(pb.READ_INDEX_RESP, m.from_id, reject=True, hint=m.hint, hint_high=m.hint_high)

    def _handle_read_index_resp(self, m: pb.Message) -> None:
        ctx = ReadContext(m.hint, m.hint_high)
        if m.reject:
            self.dropped_reads.append(ctx)
        else:
            self.ready_reads.append(ReadyToRead(ctx, m.log_index))

    # ------------------------------------------------------------------ leader transfer

    def _handle_leader_transfer(self, m: pb.Message) -> None:
        if self.quiesce_on and self.quiesce.activity():
            self._woke()
        if not self.removed:
            self._start_transfer(m.hint)

    def _start_transfer(self, target: int) -> None:
        if (
            target == self.replica_id
            or target not in self.membership.addresses
            or target not in self.progress
            or target == self.transfer_target
        ):
            return
        self.transfer_target = target
        # The transfer is abandoned if the target has not won within one election
        # timeout (thesis 3.10); the leader's election clock measures it.
        self.election_elapsed = 0
        pr = self.progress[target]
        if pr.match == self.log.last_index():
            self._send(pb.TIMEOUT_NOW, target)
        else:
            pr.probe_due = True  # catch it up now, not at the next heartbeat
            self.need_flush = True

    def _handle_forward_leader_transfer(self, m: pb.Message) -> None:
        if self.leader_id and m.term == 0 and not m.from_id:
            self.msgs.append(
                pb.Message(
                    type=pb.LEADER_TRANSFER,
                    to=self.leader_id,
                    from_id=self.replica_id,
                    shard_id=self.shard_id,
                    hint=m.hint,
                )
            )

    # ------------------------------------------------------------------ rate limiting

    def rate_limited(self) -> bool:
        return self.limiter.limited(self.log.in_mem_bytes())

    def _report_rate(self) -> bool:
        if self.leader_id and self.leader_id != self.replica_id:
            self._send(pb.RATE_LIMIT, self.leader_id, hint=self.log.in_mem_bytes())
            return True
        return False

    def _handle_leader_rate_limit(self, m: pb.Message) -> None:
        self.limiter.follower_size(m.from_id, m.hint)
        limited = self.rate_limited()
        if limited != self.told_limited:
            # The verdict changed: everyone hears it now, not at their next report.
            self.told_limited = limited
            for rid in self.progress:
                self._send(pb.RATE_LIMIT, rid, reject=limited)
        else:
            self._send(pb.RATE_LIMIT, m.from_id, reject=limited)

    def _handle_follower_rate_limit(self, m: pb.Message) -> None:
        if m.from_id == self.leader_id:
            self.limiter.leader_verdict(m.reject)

    # ------------------------------------------------------------------ quiesce

    def _enter_quiesce(self) -> bool:
        if self.role is Role.LEADER and self.progress:
            for rid in self.progress:
                self._send(pb.QUIESCE, rid)
            return True
        return False

    def _handle_quiesce(self, m: pb.Message) -> None:
        if m.from_id == self.leader_id:
            self.quiesce.peer_quiesced()

    def _woke(self) -> None:
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        for pr in self.progress.values():
            pr.active = True

    def _handle_local_tick(self, m: pb.Message) -> None:
        self.tick()


def _for_witness(entries: list[pb.Entry]) -> list[pb.Entry]:
    """A witness stores only each entry's place in the log, and membership changes."""
    return [
        e if e.type == CONFIG_CHANGE else pb.Entry(term=e.term, index=e.index, type=pb.METADATA)
        for e in entries
    ]


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
    rows: list[tuple[tuple[Role, ...], MessageType, Handler]] = [
        (_ALL, MT.LOCAL_TICK, Raft._handle_local_tick),
        (_CAMPAIGNING, MT.ELECTION, Raft._handle_election),
        ((Role.LEADER,), MT.LEADER_HEARTBEAT, lambda r, m: r._broadcast_heartbeat()),
        (
            (Role.LEADER,),
            MT.CHECK_QUORUM,
            lambda r, m: None if r._quorum_active() else r.become_follower(r.term, 0),
        ),
        (_ALL, MT.PROPOSE, Raft._handle_propose),
        ((Role.LEADER,), MT.PROPOSE_FORWARD, Raft._handle_propose_forward),
        ((Role.LEADER,), MT.SNAPSHOT_STATUS, Raft._handle_snapshot_status),
        ((Role.LEADER,), MT.UNREACHABLE, Raft._handle_unreachable),
        ((Role.LEADER,), MT.LEADER_TRANSFER, Raft._handle_leader_transfer),
        (_FOLLOWING, MT.LEADER_TRANSFER, Raft._handle_forward_leader_transfer),
        (_ALL, MT.BATCHED_READ_INDEX, Raft._handle_batched_read_index),
        ((Role.LEADER,), MT.READ_INDEX, Raft._handle_read_index),
        (_NOT_LEADER, MT.READ_INDEX, Raft._handle_not_leader_read_index),
        (_ALL, MT.READ_INDEX_RESP, Raft._handle_read_index_resp),
        (_NOT_LEADER, MT.REPLICATE, Raft._handle_replicate),
        (_NOT_LEADER, MT.HEARTBEAT, Raft._handle_heartbeat),
        (_NOT_LEADER, MT.INSTALL_SNAPSHOT, Raft._handle_install_snapshot),
        ((Role.LEADER,), MT.REPLICATE_RESP, Raft._handle_replicate_resp),
        ((Role.LEADER,), MT.HEARTBEAT_RESP, Raft._handle_heartbeat_resp),
        (_VOTING, MT.REQUEST_VOTE, Raft._handle_vote),
        (_VOTING, MT.REQUEST_PRE_VOTE, Raft._handle_vote),
        ((Role.CANDIDATE,), MT.REQUEST_VOTE_RESP, Raft._handle_vote_resp),
        ((Role.PRE_CANDIDATE,), MT.REQUEST_PRE_VOTE_RESP, Raft._handle_vote_resp),
        ((Role.FOLLOWER,), MT.TIMEOUT_NOW, Raft._handle_timeout_now),
        (_FOLLOWING, MT.QUIESCE, Raft._handle_quiesce),
        ((Role.LEADER,), MT.RATE_LIMIT, Raft._handle_leader_rate_limit),
        (_FOLLOWING, MT.RATE_LIMIT, Raft._handle_follower_rate_limit),
    ]
    table: dict[tuple[Role, MessageType], Handler] = {}
    for roles, mt, handler in rows:
        for role in roles:
            if (role, mt) in table:
                raise RuntimeError(f"two handlers for {role.name} {mt.name}")
            table[(role, mt)] = handler
    return table


HANDLERS: dict[tuple[Role, MessageType], Handler] = _table()
_BY_ROLE: dict[Role, dict[int, Handler]] = {
    role: {mt: h for (r, mt), h in HANDLERS.items() if r is role} for role in Role
}
