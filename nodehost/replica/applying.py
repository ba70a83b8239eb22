"""The apply side of a replica: its state machine layer, its snapshot store and the
queue of typed tasks its apply worker runs, in order.

Rules:
- One apply worker at a time runs `run` (the engine's runtime gives each replica one
  worker); tasks run in the order they were submitted, from any thread.
- Proposals complete with what the state machine returned; reads are released once the
  applied index reaches their confirmed index.
- A replica that stops by itself says why to its callers: StateMachineFailed when the
  user's state machine raised, ReplicaRemoved once it was removed from its shard.
- A snapshot that cannot be written (disk full, IO error) fails that snapshot only: the
  replica goes on and tries again later (SNAPSHOT_RETRY_* below), logging each time.
- Whoever stops the replica takes `running` to know that no task runs any more (none
  starts once `stopped` is set).
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from logdb import ILogDB
from nodehost.config import Config
from nodehost.errors import RaftError, ReplicaRemoved, ShardClosed, StateMachineFailed
from nodehost.raft import Refusal
from nodehost.replica.events import (
    ReplicaFailed,
    SnapshotCreated,
    SnapshotReady,
    SnapshotRecovered,
)
from nodehost.replica.inputs import Inputs, RefuseMessage, ReportSnapshotStatus
from nodehost.replica.link import EngineLink
from nodehost.replica.requests import Requests
from nodehost.replica.status import Status
from nodehost.request import RequestResult, RequestState, ResultCode, batched_wakeups, complete
from nodehost.rsm import (
    ApplyKind,
    SnapshotError,
    SnapshotOutOfDate,
    SnapshotStore,
    StateMachineError,
    StateMachineManager,
)
from protos import raft_pb2 as pb
from statemachine import SnapshotStopped

log = logging.getLogger("nodehost")

# After a snapshot could not be written, the next automatic one waits this long, doubled
# after each failure in a row up to the maximum: a full disk is not hammered with
# snapshot-sized writes, and space freed by an operator is used within a minute.
SNAPSHOT_RETRY_FIRST = 1.0
SNAPSHOT_RETRY_MAX = 60.0


class ReplicaMetrics(Protocol):
    """What a replica counts itself (nodehost.metrics.Metrics); any thread."""

    def applied(self, shard_id: int, count: int, seconds: float) -> None: ...
    def dropped(self, shard_id: int, proposals: int, reads: int) -> None: ...
    def snapshot(self, event: str) -> None: ...


@dataclass(slots=True)
class SnapshotRequest:
    rs: RequestState
    export_path: str | None
    compaction_overhead: int | None


# ---------------------------------------------------------------------- tasks


@dataclass(frozen=True, slots=True)
class ApplyEntries:
    entries: list[pb.Entry]


@dataclass(frozen=True, slots=True)
class Recover:
    """Rebuild the state machine from a snapshot the core installed."""

    snapshot: pb.Snapshot


@dataclass(frozen=True, slots=True)
class SaveSnapshot:
    request: SnapshotRequest | None  # None: an automatic one (snapshot_entries)


@dataclass(frozen=True, slots=True)
class StreamSnapshot:
    """Make a full snapshot for a follower (on-disk state machines keep only metadata in
    their periodic ones); `message` is the INSTALL_SNAPSHOT to fill in."""

    message: pb.Message


@dataclass(frozen=True, slots=True)
class InstallSnapshot:
    """A snapshot received from the leader: check it and move it into the store, then
    hand its message to the core."""

    message: pb.Message


@dataclass(frozen=True, slots=True)
class DiscardSnapshot:
    """Remove the files of a received snapshot that admission refused."""

    snapshot: pb.Snapshot


ApplyTask = (
    ApplyEntries | Recover | SaveSnapshot | StreamSnapshot | InstallSnapshot | DiscardSnapshot
)


class ApplySide:
    def __init__(
        self,
        config: Config,
        rsm: StateMachineManager,
        snapshots: SnapshotStore,
        logdb: ILogDB,
        requests: Requests,
        inputs: Inputs,
        status: Status,
        link: EngineLink,
        metrics: ReplicaMetrics,
        clock: Callable[[], float],
        last_snapshot_index: int,
        ready_index: int,
    ) -> None:
        self.config = config
        self.shard_id = config.shard_id
        self.replica_id = config.replica_id
        self.rsm = rsm
        self.snapshots = snapshots
        self._logdb = logdb
        self._requests = requests
        self._inputs = inputs
        self._status = status
        self._link = link
        self._metrics = metrics
        self._clock = clock
        self._lock = threading.Lock()
        self.running = threading.Lock()
        self._queue: deque[ApplyTask] = deque()
        self._scheduled = False
        self.applied_index = rsm.applied_index
        self.last_snapshot_index = last_snapshot_index
        self._snapshot_failures = 0
        self._snapshot_retry_at = 0.0
        # `wait_ready`: set once every entry this replica knew to be committed when it
        # started is applied (or it failed or stopped: the waiter then looks why).
        self.ready = threading.Event()
        self._ready_index = ready_index
        if rsm.witness or self.applied_index >= ready_index:
            self.ready.set()

    def stopped(self) -> bool:
        return self._status.stopped

    # ---------------------------------------------------------------- any thread

    def submit(self, task: ApplyTask) -> None:
        with self._lock:
            self._queue.append(task)
            if self._scheduled:
                return
            self._scheduled = True
        self._link.schedule_apply()

    def drop_queued(self) -> None:
        """For a replica being stopped: queued tasks never run."""
        with self._lock:
            self._queue.clear()

    # ---------------------------------------------------------------- the worker

    def run(self) -> None:
        """Run queued tasks in order (on this replica's apply worker)."""
        with self.running:
            while True:
                with self._lock:
                    if not self._queue or self._status.stopped:
                        self._scheduled = False
                        return
                    task = self._queue.popleft()
                if self._status.failed is not None:
                    continue
                try:
                    self._run(task)
                except StateMachineError as exc:
                    self._fail(f"state machine failed: {exc}", StateMachineFailed)
                except SnapshotStopped:
                    if not self._status.stopped:  # only a stopping replica may stop one
                        self._fail("a snapshot stopped while the replica was running")
                except Exception as exc:
                    name = type(task).__name__
                    log.exception(
                        "shard %d replica %d: apply task %s failed",
                        self.shard_id,
                        self.replica_id,
                        name,
                    )
                    self._fail(f"{name} failed: {exc!r}")

    def _run(self, task: ApplyTask) -> None:
        match task:
            case ApplyEntries(entries):
                with batched_wakeups():
                    self._apply_entries(entries)
            case Recover(snapshot):
                self._recover(snapshot)
            case SaveSnapshot(request):
                self._save_snapshot(request)
            case StreamSnapshot(message):
                self._stream_snapshot(message)
            case InstallSnapshot(message):
                self._install_received(message)
            case DiscardSnapshot(snapshot):
                self._remove_received(snapshot)

    def _fail(self, reason: str, error: type[RaftError] = ShardClosed) -> None:
        log.error("shard %d replica %d stops: %s", self.shard_id, self.replica_id, reason)
        status = self._status
        status.failure_error = error
        status.failed = reason
        self.ready.set()
        self._link.report(ReplicaFailed(reason))

    def _apply_entries(self, entries: list[pb.Entry]) -> None:
        started = time.perf_counter()
        results = self.rsm.apply(entries)
        requests = self._requests
        proposals = requests.proposals
        config_changed = False
        for r in results:
            kind = r.kind
            if kind is ApplyKind.CONFIG_CHANGE:
                config_changed = True
                code = ResultCode.REJECTED if r.rejected else ResultCode.COMPLETED
                requests.config_changes.complete(r.key, RequestResult(code, reason=r.reason))
            elif r.key and kind is not ApplyKind.NOOP and not r.ignored:
                rs = proposals.pop(r.key)
                if rs is not None:
                    if r.rejected:
                        complete(rs, RequestResult(ResultCode.REJECTED, reason=r.reason))
                    else:
                        complete(rs, RequestResult(ResultCode.COMPLETED, r.result))
        self.applied_index = self.rsm.applied_index
        if self.applied_index >= self._ready_index and not self.ready.is_set():
            self.ready.set()
        self._metrics.applied(self.shard_id, len(entries), time.perf_counter() - started)
        if self._status.rate_limited:  # applying shrinks the in-memory log: look again
            self._link.wake()
        requests.release_reads(self.applied_index)
        if config_changed and self.replica_id in self.rsm.membership.removed:
            self._removal_applied()
        every = self.config.snapshot_entries
        if (
            every
            and self.applied_index - self.last_snapshot_index >= every
            and (not self._snapshot_failures or self._clock() >= self._snapshot_retry_at)
        ):
            self._save_snapshot(None)

    def _removal_applied(self) -> None:
        """Everything committed before our removal is applied and answered; what is still
        pending here can no longer be answered by this replica (the leader sends it
        nothing more), so its callers learn now instead of at their timeout."""
        self._status.removed = True
        self._requests.fail_unanswerable(removed_result(self.shard_id, self.replica_id))

    def _recover(self, snapshot: pb.Snapshot) -> None:
        self.rsm.recover(snapshot, self.stopped)
        self.applied_index = self.rsm.applied_index
        if self.applied_index >= self._ready_index:
            self.ready.set()
        self.last_snapshot_index = max(self.last_snapshot_index, snapshot.index)
        self._link.report(SnapshotRecovered(snapshot))
        self._requests.release_reads(self.applied_index)
        if not self._status.removed and self.replica_id in snapshot.membership.removed:
            self._removal_applied()

    def _save_snapshot(self, request: SnapshotRequest | None) -> None:
        applied = self.rsm.applied_index
        if request is not None and request.rs.done():
            return
        snapshots = self._requests.snapshots
        exporting = request is not None and request.export_path is not None
        if not exporting and applied <= self.last_snapshot_index:
            if request is not None:
                snapshots.complete(
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
            snapshot = self.rsm.save_snapshot(self.stopped, export_path=export_path)
        except SnapshotOutOfDate as exc:
            if request is not None:
                snapshots.complete(
                    request.rs.key, RequestResult(ResultCode.REJECTED, reason=str(exc))
                )
            return
        except OSError as exc:
            # Our own write failed (the user's errors arrive as StateMachineError).
            self._snapshot_not_saved(exc, applied, request)
            return
        self._snapshot_failures = 0
        if not exporting:
            overhead = self.config.compaction_overhead
            if request is not None and request.compaction_overhead is not None:
                overhead = request.compaction_overhead
            self.last_snapshot_index = snapshot.index
            self._logdb.save_snapshot(self.shard_id, self.replica_id, snapshot)
            compact_to = snapshot.index - overhead if snapshot.index > overhead else 0
            self._link.report(SnapshotCreated(snapshot, compact_to))
        if request is not None:
            snapshots.complete(
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
            self._snapshot_failures += 1
            delay = min(
                SNAPSHOT_RETRY_MAX, SNAPSHOT_RETRY_FIRST * 2 ** (self._snapshot_failures - 1)
            )
            self._snapshot_retry_at = self._clock() + delay
            log.warning(
                "shard %d replica %d: snapshot at index %d not saved: %s; the replica goes "
                "on, the next snapshot is tried in %.0f s or later (failure %d in a row)",
                self.shard_id,
                self.replica_id,
                index,
                why,
                delay,
                self._snapshot_failures,
            )
        else:
            log.warning(
                "shard %d replica %d: requested snapshot at index %d not saved: %s",
                self.shard_id,
                self.replica_id,
                index,
                why,
            )
            self._requests.snapshots.complete(
                request.rs.key,
                RequestResult(ResultCode.ABORTED, reason=f"snapshot not saved: {why}"),
            )
        self._metrics.snapshot("save_failed")

    def _install_received(self, message: pb.Message) -> None:
        """Check a received snapshot and move it into the store, then let the core see
        it. One that is not what its metadata says is refused (counted on the loop);
        one the disk could not take is dropped (logged). Either way the leader sends
        again."""
        try:
            local = self.snapshots.install_received(message.snapshot)
        except SnapshotError as exc:
            log.warning(
                "shard %d replica %d: received snapshot %d refused: %s",
                self.shard_id,
                self.replica_id,
                message.snapshot.index,
                exc,
            )
            self._remove_received(message.snapshot)
            self._inputs.local.append(RefuseMessage(message, Refusal.BAD_SNAPSHOT))
            self._link.wake()
            return
        except Exception as exc:
            log.warning(
                "shard %d replica %d: received snapshot %d could not be stored: %s",
                self.shard_id,
                self.replica_id,
                message.snapshot.index,
                exc,
            )
            return
        message.snapshot.CopyFrom(local)
        self._link.deliver(message)

    def _remove_received(self, snapshot: pb.Snapshot) -> None:
        directory = os.path.dirname(snapshot.filepath)
        if os.path.dirname(directory) == self.snapshots.dir and directory.endswith(".receiving"):
            shutil.rmtree(directory, ignore_errors=True)

    def _stream_snapshot(self, message: pb.Message) -> None:
        try:
            snapshot = self.rsm.save_streamable_snapshot(self.stopped)
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
            self._metrics.snapshot("save_failed")
            self._inputs.local.append(ReportSnapshotStatus(message.to, True))
            self._link.wake()
            return
        message.snapshot.CopyFrom(snapshot)
        self._link.report(SnapshotReady(message))


def removed_result(shard_id: int, replica_id: int) -> RequestResult:
    return RequestResult(
        ResultCode.TERMINATED,
        reason=(
            f"shard {shard_id} replica {replica_id} was removed from the shard; "
            "a proposal made through it may still be applied by the other members"
        ),
        error=ReplicaRemoved,
    )
