"""What every part of the NodeHost's API shares: its state, and the primitives each call
is made of (the replica a request goes to, registering and queueing a request,
retrying a dropped one).

NodeHost (nodehost.py) is assembled from parts that each subclass `HostBase`: the
membership calls (membership_api.py) and the coroutine forms (aio.py) use these
primitives as defined here, not as declarations of methods found elsewhere.

Rules:
- Every public method is thread-safe; the state below is set once by NodeHost.__init__.
- A request is registered with its replica before it is queued (the replica does
  both: nodehost.replica), so that it always ends, at the latest by its deadline.
- Blocking waits refuse to run on a runtime that shares the caller's thread (a
  simulation): `_check_may_block`.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable

from logdb import ILogDB
from nodehost import errors
from nodehost.config import NodeHostConfig
from nodehost.engine import Engine
from nodehost.info import Membership, SnapshotOption
from nodehost.metrics import Metrics
from nodehost.parts import Clock
from nodehost.replica import Replica, SnapshotRequest
from nodehost.request import RequestResult, RequestState, ResultCode, check_timeout
from nodehost.rsm import SERIES_ID_REGISTER, SERIES_ID_UNREGISTER, Session
from protos import raft_pb2 as pb
from statemachine import StateMachineType


class HostBase:
    config: NodeHostConfig
    _clock: Clock
    _lock: threading.RLock
    _closed: bool
    _rng: random.Random
    _keys: itertools.count[int]
    _logdb: ILogDB | None
    _engine: Engine | None
    _metrics: Metrics

    def _check_may_block(self, what: str) -> None:
        engine = self._engine
        if engine is not None and not engine.runtime.may_block():
            raise errors.InvalidOperation(
                f"{what} block the calling thread, and this NodeHost's runtime runs on it "
                "(a simulation): await the request, or use the aio_* calls"
            )

    def _check_open(self) -> Engine:
        if self._closed or self._engine is None:
            raise errors.Closed("the NodeHost is closed")
        if self._engine.fatal is not None:
            raise errors.Closed(f"the NodeHost stopped: {self._engine.fatal}")
        return self._engine

    def propose(self, session: Session, cmd: bytes, timeout: float) -> RequestState:
        """Propose `cmd`; returns at once. `rs.wait()` or `await rs` gives the outcome."""
        if session.series_id in (SERIES_ID_REGISTER, SERIES_ID_UNREGISTER):
            raise errors.InvalidSession("the session is being registered or closed")
        return self._propose(session, cmd, timeout)

    def _retrying(self, start: Callable[[float], RequestState], timeout: float) -> RequestResult:
        """Wait for a request, starting it again while it is dropped (no leader yet, or
        leadership moving): a dropped request never took effect, so this is safe, and a
        caller's timeout covers the election instead of failing at once."""
        check_timeout(timeout)
        self._check_may_block("sync_* calls")
        deadline = time.monotonic() + timeout
        pause = self.config.rtt_millisecond / 1000.0
        while True:
            remaining = deadline - time.monotonic()
            outcome = start(max(remaining, 0.001)).wait(max(remaining, 0.0) + 0.5)
            if outcome.code is not ResultCode.DROPPED:
                return outcome
            if time.monotonic() + pause >= deadline:
                return outcome
            time.sleep(pause)

    def _propose(self, session: Session, cmd: bytes, timeout: float) -> RequestState:
        self._check_open()
        if not isinstance(cmd, bytes | bytearray | memoryview):
            raise TypeError(f"cmd must be bytes, got {type(cmd).__name__}")
        check_timeout(timeout)
        if len(cmd) > self.config.max_entry_size:
            raise errors.PayloadTooBig(
                f"{len(cmd)} bytes is more than max_entry_size ({self.config.max_entry_size})"
            )
        node = self._serving_node(session.shard_id)
        if node.rsm.kind is StateMachineType.ON_DISK and not session.is_noop():
            raise errors.InvalidSession("on-disk state machines need the no-op session")
        if node.status.rate_limited:
            self._metrics.system_busy("proposal")
            raise errors.SystemBusy(
                f"shard {session.shard_id}: too much unapplied log in memory "
                f"(max_in_mem_log_size {node.config.max_in_mem_log_size}); retry later"
            )
        key = next(self._keys)
        now = self._clock.monotonic()
        rs = RequestState(
            key,
            now + timeout,
            self.config.notify_commit,
            size=len(cmd),
            started=now,
            on_done=self._metrics.proposal_result if self._metrics.enabled else None,
        )
        entry = pb.Entry(
            key=key,
            client_id=session.client_id,
            series_id=session.series_id,
            responded_to=session.responded_to,
            cmd=bytes(cmd),
        )
        refused = node.propose(rs, entry)
        if refused is not None:
            self._metrics.system_busy("proposal")
            raise errors.SystemBusy(
                f"shard {session.shard_id}: {refused} (max_pending_proposals, "
                "max_pending_proposal_bytes, max_queue_delay_ms); retry later"
            )
        self._metrics.proposal(session.shard_id)
        return rs

    def read_index(self, shard_id: int, timeout: float) -> RequestState:
        """Start a linearizable read; once it completes, call `read_local_node`."""
        self._check_open()
        check_timeout(timeout)
        node = self._serving_node(shard_id)
        if node.config.is_witness:
            raise errors.InvalidOperation("a witness has no state machine to read")
        now = self._clock.monotonic()
        rs = RequestState(next(self._keys), now + timeout, shard_id=shard_id, started=now)
        refused = node.read(rs)
        if refused is not None:
            self._metrics.system_busy("read")
            raise errors.SystemBusy(
                f"shard {shard_id}: {refused} (max_pending_reads, max_queue_delay_ms); retry later"
            )
        self._metrics.read()
        return rs

    def request_snapshot(
        self, shard_id: int, option: SnapshotOption | None, timeout: float
    ) -> RequestState:
        """Snapshot the state machine now; `snapshot_index` of the result tells where."""
        self._check_open()
        check_timeout(timeout)
        option = option or SnapshotOption()
        if option.exported and not option.export_path:
            raise errors.InvalidOperation("an exported snapshot needs export_path")
        if option.override_compaction_overhead and option.compaction_overhead < 0:
            raise errors.InvalidOperation("compaction_overhead must not be negative")
        node = self._node(shard_id)
        if node.config.is_witness:
            raise errors.InvalidOperation("a witness has no state machine to snapshot")
        rs = RequestState(next(self._keys), self._clock.monotonic() + timeout)
        node.request_snapshot(
            SnapshotRequest(
                rs,
                option.export_path if option.exported else None,
                option.compaction_overhead if option.override_compaction_overhead else None,
            )
        )
        return rs

    def _node(self, shard_id: int) -> Replica:
        engine = self._check_open()
        node = engine.nodes.get(shard_id)
        if node is None:
            raise errors.ShardNotFound(f"shard {shard_id} does not run on this NodeHost")
        status = node.status
        if status.failed is not None:
            raise status.failure_error(f"shard {shard_id} stopped: {status.failed}")
        if status.stopped:  # stop_* returned; the engine lets it go at its next turn
            raise errors.ShardClosed(f"shard {shard_id} was stopped")
        return node

    def _serving_node(self, shard_id: int) -> Replica:
        """The replica a new request goes to; ReplicaRemoved at once once it was removed
        from the shard (it would only drop the request, and the caller retry in vain)."""
        node = self._node(shard_id)
        if node.status.removed:
            raise errors.ReplicaRemoved(
                f"shard {shard_id} replica {node.replica_id} was removed from the shard"
            )
        return node

    def _membership(self, shard_id: int) -> Membership:
        m = self._node(shard_id).rsm.membership
        return Membership(
            config_change_id=m.config_change_id,
            nodes=dict(m.addresses),
            non_votings=dict(m.non_votings),
            witnesses=dict(m.witnesses),
            removed=set(m.removed),
        )
