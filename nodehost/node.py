"""One replica inside a NodeHost: its core, its state machine, its queues and requests.

Rules:
- User threads only append to the queues here and register requests; the engine loop is
  the only thread that touches `peer`; one apply worker at a time runs `run_apply`.
- The apply worker completes proposals with what the state machine returned, and
  releases reads once the applied index reaches their confirmed index.
- A replica that stops by itself says why to its callers: StateMachineFailed when the
  user's state machine raised, ReplicaRemoved once it was removed from its shard.
- A snapshot that cannot be written (disk full, IO error) fails that snapshot only:
  the replica goes on and tries again later (SNAPSHOT_RETRY_* below), logging each time.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nodehost.admission import DelayGate
from nodehost.config import Config
from nodehost.errors import RaftError, ReplicaRemoved, ShardClosed, StateMachineFailed
from nodehost.logreader import CachedLogReader
from nodehost.raft import Peer, ReadContext, Update
from nodehost.request import (
    PendingRequests,
    RequestResult,
    RequestState,
    ResultCode,
    batched_wakeups,
)
from nodehost.rsm import (
    ApplyKind,
    SnapshotOutOfDate,
    SnapshotStore,
    StateMachineError,
    StateMachineManager,
)
from protos import raft_pb2 as pb
from statemachine import SnapshotStopped

if TYPE_CHECKING:
    from nodehost.engine import Engine

log = logging.getLogger("nodehost")

# After a snapshot could not be written, the next automatic one waits this long, doubled
# after each failure in a row up to the maximum: a full disk is not hammered with
# snapshot-sized writes, and space freed by an operator is used within a minute.
SNAPSHOT_RETRY_FIRST = 1.0
SNAPSHOT_RETRY_MAX = 60.0


@dataclass(slots=True)
class SnapshotRequest:
    rs: RequestState
    export_path: str | None
    compaction_overhead: int | None


class ReadTracker:
    """ReadIndex batches: waiting for confirmation, then for the apply index."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._batches: dict[tuple[int, int], list[RequestState]] = {}
        self._ready: list[tuple[int, int, list[RequestState]]] = []
        self._seq = itertools.count()

    def add_batch(self, ctx: ReadContext, requests: list[RequestState]) -> None:
        with self._lock:
            self._batches[(ctx.low, ctx.high)] = requests

    def confirmed(self, ctx: ReadContext, index: int) -> None:
        with self._lock:
            requests = self._batches.pop((ctx.low, ctx.high), None)
            if requests:
                heapq.heappush(self._ready, (index, next(self._seq), requests))

    def dropped(self, ctx: ReadContext) -> list[RequestState]:
        with self._lock:
            return self._batches.pop((ctx.low, ctx.high), None) or []

    def release(self, applied: int) -> list[RequestState]:
        if not self._ready or self._ready[0][0] > applied:
            return []
        released: list[RequestState] = []
        with self._lock:
            while self._ready and self._ready[0][0] <= applied:
                released.extend(heapq.heappop(self._ready)[2])
        return released

    def forget_done(self) -> None:
        """Drop batches whose requests all finished (timed out): the leader never answered."""
        with self._lock:
            for key in [k for k, reqs in self._batches.items() if all(r.done() for r in reqs)]:
                del self._batches[key]

    def fail_all(
        self, code: ResultCode, reason: str = "", error: type[RaftError] | None = None
    ) -> None:
        with self._lock:
            requests = [r for reqs in self._batches.values() for r in reqs]
            requests += [r for _, _, reqs in self._ready for r in reqs]
            self._batches.clear()
            self._ready.clear()
        for rs in requests:
            rs.complete(RequestResult(code, reason=reason, error=error))


class Node:
    def __init__(
        self,
        engine: Engine,
        config: Config,
        peer: Peer,
        rsm: StateMachineManager,
        log_reader: CachedLogReader,
        snapshots: SnapshotStore,
        apply_worker: int,
    ) -> None:
        self.engine = engine
        self.config = config
        self.shard_id = config.shard_id
        self.replica_id = config.replica_id
        self.peer = peer
        self.rsm = rsm
        self.log_reader = log_reader
        self.snapshots = snapshots
        self.apply_worker = apply_worker
        # Inputs, appended from any thread, drained by the engine loop.
        self.inbox: deque[pb.Message] = deque()
        self.inbox_bytes = 0  # of the host's receive queue (on the loop only)
        self.local_calls: deque[Callable[[Peer], None]] = deque()
        self.proposals: deque[pb.Entry] = deque()
        self.reads: deque[RequestState] = deque()
        self.config_changes: deque[tuple[pb.ConfigChange, int]] = deque()
        self.queued = False  # already in the engine's ready set
        self.last_tick = 0
        self.quiesced = False
        self.reported_applied = 0
        # Requests.
        # Bounded (Config.max_pending_*, max_queue_delay_ms): past a bound a call gets
        # SystemBusy.
        delay = config.max_queue_delay_ms / 1000.0
        self.pending_proposals = PendingRequests(
            config.max_pending_proposals,
            config.max_pending_proposal_bytes,
            DelayGate(delay) if delay else None,
        )
        self.pending_reads = PendingRequests(
            config.max_pending_reads, gate=DelayGate(delay) if delay else None
        )
        self.pending_config_changes = PendingRequests()
        self.pending_snapshots = PendingRequests()
        self.read_tracker = ReadTracker()
        self.read_counter = itertools.count(1)
        # Leadership as last reported by the core.
        self.leader_id = 0
        self.term = 0
        self.membership_id = -1
        # A copy of the core's membership, replaced (never changed) on the loop, so user
        # threads can read it.
        self.membership = peer.membership
        # Apply side: tasks run in order on one worker.
        self.apply_lock = threading.Lock()
        self.apply_queue: deque[tuple[str, Any]] = deque()
        self.apply_scheduled = False
        self.applied_index = rsm.applied_index
        self.last_snapshot_index = log_reader.snapshot().index
        self.stopped = False
        self.failed: str | None = None
        # What callers get once the replica stopped by itself (see the module rules).
        self.failure_error: type[RaftError] = ShardClosed
        # Removed from the shard (set on the loop when the core learns it, or on the
        # apply worker when the change is applied): requests fail with ReplicaRemoved.
        self.removed = False
        self.unload_reported = False  # node_unloaded goes out once (NodeHost's lock)
        # Automatic snapshots that failed to be written, and when to try again.
        self.snapshot_failures = 0
        self.snapshot_retry_at = 0.0
        # `wait_ready`: set once every entry this replica knew to be committed when it
        # started is applied (or it failed or stopped: the waiter then looks why).
        self.ready = threading.Event()
        self.ready_index = log_reader.state().commit
        if rsm.witness or self.applied_index >= self.ready_index:
            self.ready.set()
        # The core's rate limit as of the last pass. User and apply threads read this
        # copy: the core's own answer walks its log, which only the loop may touch.
        self.limits_rate = config.max_in_mem_log_size > 0
        self.rate_limited = False

    def stopped_flag(self) -> bool:
        return self.stopped

    # ---------------------------------------------------------------- engine loop

    def step_inputs(self, ticks: int) -> Update | None:
        """Feed everything queued into the core; return its update, if any."""
        peer = self.peer
        if self.applied_index != self.reported_applied:
            self.reported_applied = self.applied_index
            peer.applied_to(self.reported_applied)
        inbox = self.inbox
        while inbox:
            peer.step(inbox.popleft())
        if self.inbox_bytes:
            self.engine.receive_queue.release(self.inbox_bytes)
            self.inbox_bytes = 0
        calls = self.local_calls
        while calls:
            calls.popleft()(peer)
        if self.proposals:
            proposals = self.proposals
            entries = [proposals.popleft() for _ in range(len(proposals))]
            peer.propose(entries)
        while self.config_changes:
            cc, key = self.config_changes.popleft()
            peer.propose_config_change(cc, key)
        if self.reads:
            reads = self.reads
            batch = [reads.popleft() for _ in range(len(reads))]
            batch = [rs for rs in batch if not rs.done()]
            if batch:
                ctx = ReadContext(self.engine.read_ctx_low(), next(self.read_counter))
                self.read_tracker.add_batch(ctx, batch)
                peer.read_index(ctx)
        for _ in range(ticks):
            peer.tick()
        if self.limits_rate:
            self.rate_limited = peer.rate_limited()
        if peer.has_update():
            return peer.get_update()
        return None

    def on_update(self, update: Update) -> None:
        """After commit_update: leadership, dropped requests, reads, hand-off to apply."""
        if update.leader is not None:
            leader = update.leader
            if leader.leader_id != self.leader_id or leader.term != self.term:
                self.leader_id, self.term = leader.leader_id, leader.term
                self.engine.leader_changed(self)
        if not self.removed and self.peer.removed:
            self.removed = True  # the core drops everything from now on
        if update.dropped_entries or update.dropped_reads:
            self._dropped(update)
        for ready in update.ready_to_reads:
            self.read_tracker.confirmed(ready.context, ready.index)
        if update.ready_to_reads:
            self.release_reads()
        if update.snapshot is not None:
            self.submit_apply("recover", update.snapshot)
        if update.committed:
            self._hand_committed(update.committed)
        membership_id = self.peer.membership_id
        if membership_id != self.membership_id:
            self.membership_id = membership_id
            self.membership = self.peer.membership
            self.engine.membership_changed(self)

    def apply_saved(self, update: Update) -> None:
        """Before the pass's save: hand the committed entries this replica saved in an
        earlier pass to the apply worker (Update.saved_committed); `on_update` hands the
        rest. An answer then waits for no fsync but the one that made it durable."""
        count = update.saved_committed
        entries, update.committed = update.committed[:count], update.committed[count:]
        update.saved_committed = 0
        self._hand_committed(entries)

    def _hand_committed(self, entries: list[pb.Entry]) -> None:
        if self.engine.notify_commit:
            for entry in entries:
                waiting = self.pending_proposals.get(entry.key)
                if waiting is not None:
                    waiting.committed()
        self.submit_apply("entries", entries)

    def _dropped(self, update: Update) -> None:
        """Tell the callers of what the core dropped: retry (no leader yet), or give up
        (this replica was removed: no retry here can succeed)."""
        result = RequestResult(ResultCode.DROPPED)
        if self.removed:
            result = self._removed_result()
        proposals = 0
        for entry in update.dropped_entries:
            if entry.type == pb.CONFIG_CHANGE:
                self.pending_config_changes.complete(entry.key, result)
            else:
                proposals += 1
                self.pending_proposals.complete(entry.key, result)
        reads = 0
        for ctx in update.dropped_reads:
            for rs in self.read_tracker.dropped(ctx):
                reads += 1
                self.pending_reads.discard(rs.key)  # frees its place at once
                rs.complete(result)
        self.engine.dropped(self, proposals, reads)

    def _removed_result(self) -> RequestResult:
        return RequestResult(
            ResultCode.TERMINATED,
            reason=(
                f"shard {self.shard_id} replica {self.replica_id} was removed from the shard; "
                "a proposal made through it may still be applied by the other members"
            ),
            error=ReplicaRemoved,
        )

    def discard_inbox(self) -> None:
        """On the loop, for a replica that stopped: what it received is never stepped."""
        self.inbox.clear()
        if self.inbox_bytes:
            self.engine.receive_queue.release(self.inbox_bytes)
            self.inbox_bytes = 0

    def expire(self, now: float) -> None:
        self.pending_proposals.expire(now)
        self.pending_config_changes.expire(now)
        self.pending_snapshots.expire(now)
        if self.pending_reads.expire(now):
            self.read_tracker.forget_done()

    def has_pending(self) -> bool:
        """True while a request may still need timing out (read on the engine loop)."""
        return bool(
            len(self.pending_proposals)
            or len(self.pending_reads)
            or len(self.pending_config_changes)
            or len(self.pending_snapshots)
        )

    def fail_all(
        self, code: ResultCode, reason: str = "", error: type[RaftError] | None = None
    ) -> None:
        for pending in (
            self.pending_proposals,
            self.pending_reads,
            self.pending_config_changes,
            self.pending_snapshots,
        ):
            pending.fail_all(code, reason, error)
        self.read_tracker.fail_all(code, reason, error)

    # ---------------------------------------------------------------- apply side

    def submit_apply(self, kind: str, payload: Any) -> None:
        with self.apply_lock:
            self.apply_queue.append((kind, payload))
            if self.apply_scheduled:
                return
            self.apply_scheduled = True
        self.engine.schedule_apply(self)

    def run_apply(self) -> None:
        """Run queued apply tasks in order (on this node's apply worker)."""
        while True:
            with self.apply_lock:
                if not self.apply_queue or self.stopped:
                    self.apply_scheduled = False
                    return
                kind, payload = self.apply_queue.popleft()
            if self.failed is not None:
                continue
            try:
                if kind == "entries":
                    with batched_wakeups():
                        self._apply_entries(payload)
                elif kind == "recover":
                    self._recover(payload)
                elif kind == "snapshot":
                    self._save_snapshot(payload)
                elif kind == "stream":
                    self._stream_snapshot(payload)
                elif kind == "call":
                    payload()
            except StateMachineError as exc:
                self._fail(f"state machine failed: {exc}", StateMachineFailed)
            except SnapshotStopped:
                if not self.stopped:  # only a stopping replica may stop a snapshot
                    self._fail("a snapshot stopped while the replica was running")
            except Exception as exc:
                log.exception(
                    "shard %d replica %d: apply task %s failed",
                    self.shard_id,
                    self.replica_id,
                    kind,
                )
                self._fail(f"{kind} failed: {exc!r}")

    def _fail(self, reason: str, error: type[RaftError] = ShardClosed) -> None:
        log.error("shard %d replica %d stops: %s", self.shard_id, self.replica_id, reason)
        self.failure_error = error
        self.failed = reason
        self.ready.set()
        self.engine.replica_failed(self, reason)

    def _apply_entries(self, entries: list[pb.Entry]) -> None:
        started = time.perf_counter()
        results = self.rsm.apply(entries)
        proposals = self.pending_proposals
        config_changed = False
        for r in results:
            kind = r.kind
            if kind is ApplyKind.CONFIG_CHANGE:
                config_changed = True
                code = ResultCode.REJECTED if r.rejected else ResultCode.COMPLETED
                self.pending_config_changes.complete(r.key, RequestResult(code, reason=r.reason))
            elif r.key and kind is not ApplyKind.NOOP and not r.ignored:
                rs = proposals.pop(r.key)
                if rs is not None:
                    if r.rejected:
                        rs.complete(RequestResult(ResultCode.REJECTED, reason=r.reason))
                    else:
                        rs.complete(RequestResult(ResultCode.COMPLETED, r.result))
        self.applied_index = self.rsm.applied_index
        if self.applied_index >= self.ready_index and not self.ready.is_set():
            self.ready.set()
        self.engine.applied(self, len(entries), time.perf_counter() - started)
        self.release_reads()
        if config_changed and self.replica_id in self.rsm.membership.removed:
            self._removal_applied()
        every = self.config.snapshot_entries
        if (
            every
            and self.applied_index - self.last_snapshot_index >= every
            and (not self.snapshot_failures or time.monotonic() >= self.snapshot_retry_at)
        ):
            self._save_snapshot(None)

    def _removal_applied(self) -> None:
        """Everything committed before our removal is applied and answered; what is still
        pending here can no longer be answered by this replica (the leader sends it
        nothing more), so its callers learn now instead of at their timeout."""
        self.removed = True
        result = self._removed_result()
        for pending in (self.pending_proposals, self.pending_reads, self.pending_config_changes):
            pending.fail_all(result.code, result.reason, ReplicaRemoved)
        self.read_tracker.fail_all(result.code, result.reason, ReplicaRemoved)

    def release_reads(self) -> None:
        for rs in self.read_tracker.release(self.applied_index):
            self.pending_reads.pop(rs.key)
            rs.complete(RequestResult(ResultCode.COMPLETED))

    def _recover(self, snapshot: pb.Snapshot) -> None:
        self.rsm.recover(snapshot, self.stopped_flag)
        self.applied_index = self.rsm.applied_index
        if self.applied_index >= self.ready_index:
            self.ready.set()
        self.last_snapshot_index = max(self.last_snapshot_index, snapshot.index)
        self.engine.snapshot_recovered(self, snapshot)
        self.release_reads()
        if not self.removed and self.replica_id in snapshot.membership.removed:
            self._removal_applied()

    def _save_snapshot(self, request: SnapshotRequest | None) -> None:
        applied = self.rsm.applied_index
        if request is not None and request.rs.done():
            return
        exporting = request is not None and request.export_path is not None
        if not exporting and applied <= self.last_snapshot_index:
            if request is not None:
                self.pending_snapshots.complete(
                    request.rs.key,
                    RequestResult(
                        ResultCode.REJECTED,
                        snapshot_index=self.last_snapshot_index,
                        reason=f"a snapshot at index {self.last_snapshot_index} already exists",
                    ),
                )
            return
        export_path = request.export_path if request is not None else None
        try:
            snapshot = self.rsm.save_snapshot(self.stopped_flag, export_path=export_path)
        except SnapshotOutOfDate as exc:
            if request is not None:
                self.pending_snapshots.complete(
                    request.rs.key, RequestResult(ResultCode.REJECTED, reason=str(exc))
                )
            return
        except OSError as exc:
            # Our own write failed (the user's errors arrive as StateMachineError).
            self._snapshot_not_saved(exc, applied, request)
            return
        self.snapshot_failures = 0
        if not exporting:
            overhead = self.config.compaction_overhead
            if request is not None and request.compaction_overhead is not None:
                overhead = request.compaction_overhead
            self.last_snapshot_index = snapshot.index
            self.engine.snapshot_created(self, snapshot, overhead)
        if request is not None:
            self.pending_snapshots.complete(
                request.rs.key,
                RequestResult(ResultCode.COMPLETED, snapshot_index=snapshot.index),
            )

    def _snapshot_not_saved(
        self, exc: OSError, index: int, request: SnapshotRequest | None
    ) -> None:
        where = request.export_path if request is not None and request.export_path else None
        where = where or self.snapshots.dir
        why = f"{exc.strerror or exc} ({where})"
        if request is None:
            self.snapshot_failures += 1
            delay = min(
                SNAPSHOT_RETRY_MAX, SNAPSHOT_RETRY_FIRST * 2 ** (self.snapshot_failures - 1)
            )
            self.snapshot_retry_at = time.monotonic() + delay
            log.warning(
                "shard %d replica %d: snapshot at index %d not saved: %s; the replica goes "
                "on, the next snapshot is tried in %.0f s or later (failure %d in a row)",
                self.shard_id,
                self.replica_id,
                index,
                why,
                delay,
                self.snapshot_failures,
            )
        else:
            log.warning(
                "shard %d replica %d: requested snapshot at index %d not saved: %s",
                self.shard_id,
                self.replica_id,
                index,
                why,
            )
            self.pending_snapshots.complete(
                request.rs.key,
                RequestResult(ResultCode.ABORTED, reason=f"snapshot not saved: {why}"),
            )
        self.engine.snapshot_not_saved(self)

    def install_received(self, message: pb.Message) -> None:
        """On the apply worker: check a received snapshot and move it into the store,
        then let the core see it. A damaged one is dropped; the leader sends again."""
        try:
            local = self.snapshots.install_received(message.snapshot)
        except Exception as exc:
            log.warning(
                "shard %d replica %d: received snapshot %d rejected: %s",
                self.shard_id,
                self.replica_id,
                message.snapshot.index,
                exc,
            )
            return
        message.snapshot.CopyFrom(local)
        self.engine.deliver_threadsafe(self, message)

    def _stream_snapshot(self, message: pb.Message) -> None:
        """On-disk state machines keep only metadata in periodic snapshots; a follower
        that needs the data gets a full one made now."""
        try:
            snapshot = self.rsm.save_streamable_snapshot(self.stopped_flag)
        except OSError as exc:
            log.warning(
                "shard %d replica %d: snapshot for replica %d not written: %s (%s); "
                "the leader sends one again later",
                self.shard_id,
                self.replica_id,
                message.to,
                exc.strerror or exc,
                self.snapshots.dir,
            )
            self.engine.snapshot_not_saved(self)
            self.local_calls.append(lambda peer: peer.report_snapshot_status(message.to, True))
            self.engine.wake_from_thread(self)
            return
        message.snapshot.CopyFrom(snapshot)
        self.engine.send_snapshot_threadsafe(message)
