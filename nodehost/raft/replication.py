"""Log replication and commit: proposals in, REPLICATE out, acknowledgements, commit.

Both ends of AppendEntries are here (thesis 3.5, 3.6, 10.2.1): a leader's proposals,
its per-follower streams (`flush`, `_send_append`, snapshots for those that fell
behind the log), the answers that move each `Progress`, and the commit rule; a
follower's log matching, its answers, and snapshots it is sent. They share the log's
invariants, so they stay together. The hot path is here (`flush`, `_send_append`,
`_handle_replicate`, `_try_commit`): scripts/bench_core.py measures it, and a call
added per message or per entry shows there.

Rules: a leader only appends; a follower truncates only past a conflict and never
below its commit index. Entries of an earlier term commit only under one of the
leader's own term (thesis 3.6.2). A committed membership change takes effect through
reconfig.py; a heartbeat's answer confirms pending reads through reads.py.
"""

from __future__ import annotations

from enum import IntEnum
from operator import attrgetter

from protos import raft_pb2 as pb

from .core import RaftCore, Role
from .logreader import CompactedError
from .messages import ENTRY_OVERHEAD
from .progress import Progress, ProgressState
from .quorum import committed_index

CONFIG_CHANGE = pb.CONFIG_CHANGE
_TYPE = attrgetter("type")
_CMD = attrgetter("cmd")


class ProposalResult(IntEnum):
    """What `propose` did with a batch, at once (the Update says it again)."""

    APPENDED = 0  # in this leader's log; results come when the entries apply
    FORWARDED = 1  # sent to the leader this replica knows; no answer will come back
    DROPPED = 2  # some or all refused: see Update.dropped_entries (retry later)


class Replication(RaftCore):
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
            for part in _by_bytes(entries, self.config.max_replicate_bytes):
                m = pb.Message(
                    type=pb.PROPOSE_FORWARD,
                    to=self.leader_id,
                    from_id=self.replica_id,
                    shard_id=self.shard_id,
                )
                m.entries.extend(part)
                # Nothing of ours is in it: it need not wait for this pass's save (the
                # fsync), which under load would hold each forward for a whole pass.
                self.replicate.append(m)
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
            if pr.match < self.membership.config_change_id:
                # The follower may lack the latest change to the membership (the one
                # that added us, say): joining, behind, or restarted and no longer
                # knowing who leads. Then it may not know us; the membership says we
                # belong, and where to answer. (Never again once it holds the change.)
                if template is None:
                    presented = pb.Message()
                    presented.CopyFrom(m)
                    m = presented
                self._present_membership(m)
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
            m = pb.Message(
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
            if pr.match < self.membership.config_change_id:
                self._present_membership(m)  # see _send_append
            self.replicate.append(m)

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
            if log.term(index) != self.term:
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
        self.leader_match = last
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
        # A leader sends a commit index up to what we acknowledged to it, so our log
        # matches its log up to there. Commit no further than we know it matches: what
        # a REPLICATE of this leader proved, or all of it when our last entry is of
        # this term (an entry of the leader's term can only be the leader's, thesis
        # 3.5). A heartbeat cannot then commit a stale suffix of ours, however its
        # commit field came to be.
        log = self.log
        last = log.last_index()
        known = last if log.last_term() == self.term else min(self.leader_match, last)
        self._commit_to(min(m.commit, known))
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


def _by_bytes(entries: list[pb.Entry], max_bytes: int) -> list[list[pb.Entry]]:
    """Cut a batch into runs of at most `max_bytes` (sized as the log sizes them; a
    bigger entry goes alone), so that what a follower forwards in one pass never makes
    a message the transport must refuse."""
    total = sum(map(len, map(_CMD, entries))) + ENTRY_OVERHEAD * len(entries)
    if total <= max_bytes:
        return [entries]
    parts: list[list[pb.Entry]] = []
    part: list[pb.Entry] = []
    size = 0
    for e in entries:
        n = len(e.cmd) + ENTRY_OVERHEAD
        if part and size + n > max_bytes:
            parts.append(part)
            part, size = [], 0
        part.append(e)
        size += n
    parts.append(part)
    return parts


def _for_witness(entries: list[pb.Entry]) -> list[pb.Entry]:
    """A witness stores only each entry's place in the log, and membership changes."""
    return [
        e if e.type == CONFIG_CHANGE else pb.Entry(term=e.term, index=e.index, type=pb.METADATA)
        for e in entries
    ]
