"""A replica as the NodeHost and the router see it: its parts, and the calls they make.

Rules:
- NodeHost calls these methods from any thread; it never fills a queue itself. Each
  request is registered (bounded: a refusal says which bound) before it is queued, so
  that it can be timed out even if the core never answers.
- The router calls `receive` and the transport reports on the loop; the engine then
  marks the replica ready (waking from the loop costs nothing).
- Views for user threads (leader, term, membership, applied index) are copies the
  owning side replaces whole.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from logdb import ILogDB
from nodehost.config import Config
from nodehost.logreader import CachedLogReader
from nodehost.raft import Peer
from nodehost.replica.applying import (
    ApplySide,
    DiscardSnapshot,
    InstallSnapshot,
    ReplicaMetrics,
    SaveSnapshot,
    SnapshotRequest,
    StreamSnapshot,
)
from nodehost.replica.inputs import Inputs, ReportSnapshotStatus, ReportUnreachable, TransferLeader
from nodehost.replica.link import EngineLink
from nodehost.replica.requests import Requests
from nodehost.replica.status import Status
from nodehost.replica.stepping import LoopSide
from nodehost.request import RequestState
from nodehost.rsm import SnapshotStore, StateMachineManager
from protos import raft_pb2 as pb

__all__ = ["Replica", "ReplicaMetrics", "SnapshotRequest"]


class Replica:
    def __init__(
        self,
        config: Config,
        peer: Peer,
        rsm: StateMachineManager,
        log_reader: CachedLogReader,
        snapshots: SnapshotStore,
        logdb: ILogDB,
        link_for: Callable[[Replica], EngineLink],
        metrics: ReplicaMetrics,
        clock: Callable[[], float],
        rng: random.Random,
        notify_commit: bool,
        apply_worker: int,
    ) -> None:
        self.config = config
        self.shard_id = config.shard_id
        self.replica_id = config.replica_id
        self.apply_worker = apply_worker
        self.status = Status()
        self.inputs = Inputs()
        self.requests = Requests(config, clock)
        link = self._link = link_for(self)
        self.apply = ApplySide(
            config,
            rsm,
            snapshots,
            logdb,
            self.requests,
            self.inputs,
            self.status,
            link,
            metrics,
            clock,
            last_snapshot_index=log_reader.snapshot().index,
            ready_index=log_reader.state().commit,
        )
        self.loop = LoopSide(
            config,
            rsm.kind,
            peer,
            log_reader,
            self.inputs,
            self.requests,
            self.apply,
            self.status,
            link,
            metrics,
            rng,
            notify_commit,
        )

    def __repr__(self) -> str:
        return f"Replica(shard {self.shard_id}, replica {self.replica_id})"

    # ---------------------------------------------------------------- user threads

    def propose(self, rs: RequestState, entry: pb.Entry) -> str | None:
        """Queue a proposal; the bound that refuses it instead (nothing queued)."""
        refused = self.requests.proposals.try_add(rs)
        if refused is not None:
            return refused
        self.inputs.proposals.append(entry)
        self._link.wake()
        return None

    def read(self, rs: RequestState) -> str | None:
        """Queue a linearizable read; the bound that refuses it instead."""
        refused = self.requests.reads.try_add(rs)
        if refused is not None:
            return refused
        self.inputs.reads.append(rs)
        self._link.wake()
        return None

    def change_membership(self, rs: RequestState, change: pb.ConfigChange) -> None:
        self.requests.config_changes.add(rs)
        self.inputs.config_changes.append((change, rs.key))
        self._link.wake()

    def transfer_leader(self, target: int) -> None:
        self.inputs.local.append(TransferLeader(target))
        self._link.wake()

    def request_snapshot(self, request: SnapshotRequest) -> None:
        self.requests.snapshots.add(request.rs)
        self.apply.submit(SaveSnapshot(request))
        self._link.wake()  # so the engine watches its deadline

    def lookup(self, query: Any) -> Any:
        return self.apply.rsm.lookup(query)

    # ---------------------------------------------------------------- the loop

    def receive(self, message: pb.Message, size: int) -> None:
        """A message from a peer, holding `size` bytes of the receive queue."""
        inputs = self.inputs
        inputs.inbox_bytes += size
        inputs.inbox.append(message)

    def report_unreachable(self, replica_id: int) -> None:
        self.inputs.local.append(ReportUnreachable(replica_id))

    def report_snapshot_status(self, replica_id: int, failed: bool) -> None:
        self.inputs.local.append(ReportSnapshotStatus(replica_id, failed))

    def install_snapshot(self, message: pb.Message) -> None:
        """A snapshot received whole: into the store (apply worker), then the core."""
        self.apply.submit(InstallSnapshot(message))

    def discard_received(self, snapshot: pb.Snapshot) -> None:
        self.apply.submit(DiscardSnapshot(snapshot))

    def stream_snapshot(self, message: pb.Message) -> None:
        """The core wants a snapshot sent that the state machine must make first."""
        self.apply.submit(StreamSnapshot(message))

    def receive_dir(self, index: int) -> str:
        return self.apply.snapshots.receive_dir(index)

    # ---------------------------------------------------------------- views

    @property
    def leader_id(self) -> int:
        return self.loop.leader_id

    @property
    def term(self) -> int:
        return self.loop.term

    @property
    def membership(self) -> pb.Membership:
        """The core's membership (the newest committed change), a copy."""
        return self.loop.membership

    @property
    def applied_membership(self) -> pb.Membership:
        """The membership as of the applied index (a linearizable read's view)."""
        return self.apply.rsm.membership

    @property
    def applied_index(self) -> int:
        return self.apply.applied_index

    @property
    def rsm(self) -> StateMachineManager:
        return self.apply.rsm

    # ---------------------------------------------------------------- stopping

    def stop_applying(self, timeout: float) -> None:
        """Drop queued apply tasks and wait (at most `timeout`) for a running one to end:
        after it, the state machine is not called again. `status.stopped` is set."""
        self.apply.drop_queued()
        if self.apply.running.acquire(timeout=timeout):
            self.apply.running.release()
