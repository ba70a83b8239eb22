"""Elections: the election timer, pre-vote, votes, and becoming leader (thesis 3.4, 9.6).

Split from the rest because an election is a protocol of its own: its messages
(REQUEST_VOTE, REQUEST_PRE_VOTE and their answers, TIMEOUT_NOW) change only the term,
the vote and the role, and read the log only to compare it. What it needs from other
concerns is narrow: a new leader
appends its no-op entry (replication.py) and, if it was removed, hands over
(transfer.py). The check-quorum test lives here too: it decides when a leader's
election is no longer good.

Rules: a replica grants one vote per term, only to a log at least as up to date as its
own (thesis 3.6.1); a pre-vote changes no one's term. No IO, no clock: the timer is
ticks, its randomness the injected `random.Random`.
"""

from __future__ import annotations

from protos import raft_pb2 as pb

from .core import RaftCore, Role
from .messages import TERM_LIMIT
from .progress import Progress
from .quorum import VoteResult, quorum, vote_result


class Elections(RaftCore):
    # ------------------------------------------------------------------ roles

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

    # ------------------------------------------------------------------ timers

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

    # ------------------------------------------------------------------ votes

    def _campaign(self, transfer: bool, rescue: bool = False) -> None:
        if not self.promotable() and not rescue:
            return
        if self.term + 1 >= TERM_LIMIT:
            # Never reach the limit: admission refuses terms from there on, and the
            # wire's uint64 cannot hold much more. Only a forged or corrupt term gets
            # a shard this far (one election adds one).
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
                # The voter may have missed the change that added us (thesis 4.1).
                self._present_membership(self.msgs[-1])

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
