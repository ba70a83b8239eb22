"""The loop side of a replica: its Raft core, its view of the log, and stepping.

Rules:
- Only the engine loop calls anything here, and only the loop touches the core.
- A pass calls `step` (feed every queued input into the core, return its update),
  then, once the update is saved and sent, `advance` (tell callers of what the core
  dropped, confirm reads, hand committed entries and snapshots to the apply side).
- What user threads read of the core (leader, term, membership) is a copy made here,
  replaced whole, never changed in place.
"""

from __future__ import annotations

import itertools
import random
from typing import Protocol

from nodehost.config import Config
from nodehost.logreader import CachedLogReader
from nodehost.raft import Peer, ReadContext, Refusal, Update
from nodehost.replica.applying import (
    ApplyEntries,
    ApplySide,
    Recover,
    ReplicaMetrics,
    removed_result,
)
from nodehost.replica.events import LeaderChanged, MembershipChanged
from nodehost.replica.inputs import (
    Inputs,
    RefuseMessage,
    ReportSnapshotStatus,
    ReportUnreachable,
    TransferLeader,
)
from nodehost.replica.link import EngineLink
from nodehost.replica.requests import Requests
from nodehost.replica.status import Status
from nodehost.request import RequestResult, ResultCode, complete, mark_committed
from protos import raft_pb2 as pb
from statemachine import StateMachineType


class Admission(Protocol):
    """The host's checks of what peers send (nodehost.inbound.Admission)."""

    def admit(self, node: LoopSide, m: pb.Message) -> bool: ...
    def check_snapshot(self, node: LoopSide, m: pb.Message) -> bool: ...
    def refuse(self, node: LoopSide, m: pb.Message, refusal: Refusal) -> None: ...


class LoopSide:
    def __init__(
        self,
        config: Config,
        kind: StateMachineType,
        peer: Peer,
        log_reader: CachedLogReader,
        inputs: Inputs,
        requests: Requests,
        apply: ApplySide,
        status: Status,
        link: EngineLink,
        metrics: ReplicaMetrics,
        rng: random.Random,
        notify_commit: bool,
    ) -> None:
        self.config = config
        self.shard_id = config.shard_id
        self.replica_id = config.replica_id
        self.kind = kind
        self.peer = peer
        self.log_reader = log_reader
        self.admission: Admission | None = None  # set once the host takes the replica in
        self._inputs = inputs
        self._requests = requests
        self._apply = apply
        self._status = status
        self._link = link
        self._metrics = metrics
        self._rng = rng
        self._notify_commit = notify_commit
        self._read_counter = itertools.count(1)
        self.last_tick = 0
        self.quiesced = False
        self._reported_applied = 0
        self._limits_rate = config.max_in_mem_log_size > 0
        # Leadership as last reported by the core, and a copy of its membership: user
        # threads read these.
        self.leader_id = 0
        self.term = 0
        self._membership_id = -1
        self.membership = peer.membership

    # ---------------------------------------------------------------- a pass

    def step(self, ticks: int) -> Update | None:
        """Feed everything queued into the core; return its update, if any."""
        peer = self.peer
        applied = self._apply.applied_index
        if applied != self._reported_applied:
            self._reported_applied = applied
            peer.applied_to(applied)
        inputs = self._inputs
        inbox = inputs.inbox
        admission = self.admission
        while inbox:
            m = inbox.popleft()
            if admission is None or admission.admit(self, m):
                peer.step(m)
        local = inputs.local
        while local:
            self._local(local.popleft())
        if inputs.proposals:
            proposals = inputs.proposals
            peer.propose([proposals.popleft() for _ in range(len(proposals))])
        changes = inputs.config_changes
        while changes:
            cc, key = changes.popleft()
            peer.propose_config_change(cc, key)
        if inputs.reads:
            reads = inputs.reads
            batch = [rs for rs in (reads.popleft() for _ in range(len(reads))) if not rs.done()]
            if batch:
                ctx = ReadContext(self._rng.getrandbits(64), next(self._read_counter))
                self._requests.read_tracker.add_batch(ctx, batch)
                peer.read_index(ctx)
        for _ in range(ticks):
            peer.tick()
        if self._limits_rate:
            self._status.rate_limited = peer.rate_limited()
        if peer.has_update():
            return peer.get_update()
        return None

    def _local(
        self, item: ReportUnreachable | ReportSnapshotStatus | TransferLeader | RefuseMessage
    ) -> None:
        match item:
            case ReportUnreachable(replica_id):
                self.peer.report_unreachable(replica_id)
            case ReportSnapshotStatus(replica_id, failed):
                self.peer.report_snapshot_status(replica_id, failed)
            case TransferLeader(target):
                self.peer.transfer_leader(target)
            case RefuseMessage(message, refusal):
                if self.admission is not None:
                    self.admission.refuse(self, message, refusal)

    def advance(self, update: Update) -> None:
        """After commit_update: leadership, dropped requests, reads, hand-off to apply."""
        link = self._link
        if update.leader is not None:
            leader = update.leader
            if leader.leader_id != self.leader_id or leader.term != self.term:
                self.leader_id, self.term = leader.leader_id, leader.term
                link.report(LeaderChanged(leader.leader_id, leader.term))
        status = self._status
        if not status.removed and self.peer.removed:
            status.removed = True  # the core drops everything from now on
        if update.dropped_entries or update.dropped_reads:
            self._dropped(update)
        requests = self._requests
        for ready in update.ready_to_reads:
            requests.read_tracker.confirmed(ready.context, ready.index)
        if update.ready_to_reads:
            requests.release_reads(self._apply.applied_index)
        if self._notify_commit:
            for entry in update.committed:
                waiting = requests.proposals.get(entry.key)
                if waiting is not None:
                    mark_committed(waiting)
        if update.snapshot is not None:
            self._apply.submit(Recover(update.snapshot))
        if update.committed:
            self._apply.submit(ApplyEntries(update.committed))
        membership_id = self.peer.membership_id
        if membership_id != self._membership_id:
            self._membership_id = membership_id
            self.membership = self.peer.membership
            link.report(MembershipChanged(self.membership))

    def _dropped(self, update: Update) -> None:
        """Tell the callers of what the core dropped: retry (no leader yet), or give up
        (this replica was removed: no retry here can succeed)."""
        result = RequestResult(ResultCode.DROPPED)
        if self._status.removed:
            result = removed_result(self.shard_id, self.replica_id)
        requests = self._requests
        proposals = 0
        for entry in update.dropped_entries:
            if entry.type == pb.CONFIG_CHANGE:
                requests.config_changes.complete(entry.key, result)
            else:
                proposals += 1
                requests.proposals.complete(entry.key, result)
        reads = 0
        for ctx in update.dropped_reads:
            for rs in requests.read_tracker.dropped(ctx):
                reads += 1
                requests.reads.discard(rs.key)  # frees its place at once
                complete(rs, result)
        self._metrics.dropped(self.shard_id, proposals, reads)

    # ---------------------------------------------------------------- the log

    def snapshot_created(self, snapshot: pb.Snapshot, compact_to: int) -> None:
        """The apply side saved and recorded `snapshot`: drop the log behind it."""
        self.log_reader.create_snapshot(snapshot)
        if compact_to > 0:
            self.log_reader.compact(compact_to)
