"""What the engine reports about its replicas, turned into what users and peers see:
metrics, system and Raft events, and the transport's routes.

Rules:
- Called on the engine loop, except `log_db_compacted` (the IO thread) and
  `snapshot_compacted` (an apply worker); the events raised are queued for the
  listener thread either way: nothing here blocks.
- Each replica event is matched on its type (nodehost.replica.events).
- Routes follow memberships only (inbound.py): the one a replica applied replaces what
  the transport knew of its shard; removed replicas lose theirs.
- `node_unloaded` goes out once per replica, whether it failed, was stopped, or both.
"""

from __future__ import annotations

import threading

from nodehost.events import (
    EntryInfo,
    EventDispatcher,
    FailureInfo,
    LeaderInfo,
    NodeInfo,
    SnapshotInfo,
)
from nodehost.inbound import learn_routes
from nodehost.metrics import Metrics
from nodehost.replica import (
    LeaderChanged,
    MembershipChanged,
    Replica,
    ReplicaEvent,
    ReplicaFailed,
    SnapshotCreated,
    SnapshotRecovered,
)
from nodehost.routing import TransportRouter
from protos import raft_pb2 as pb
from transport import Registry


class HostReports:
    """The NodeHost's EngineListener (engine.py)."""

    def __init__(
        self,
        metrics: Metrics,
        events: EventDispatcher,
        registry: Registry,
        router: TransportRouter,
    ) -> None:
        self._metrics = metrics
        self._events = events
        self._registry = registry
        self._router = router
        self._lock = threading.Lock()

    def sync_routes(self, replica: Replica) -> None:
        """Point the transport at the addresses in the core's membership (on the loop)."""
        registry = self._registry
        m = replica.membership
        learn_routes(registry, replica.shard_id, m, replace=True)
        for rid in m.removed:
            registry.remove(replica.shard_id, rid)

    def unloaded(self, replica: Replica) -> None:
        """node_unloaded, once per replica, however many ways it stopped."""
        with self._lock:
            if replica.status.unload_reported:
                return
            replica.status.unload_reported = True
        self._events.node_unloaded(NodeInfo(replica.shard_id, replica.replica_id))

    # EngineListener

    def replica_event(self, replica: Replica, event: ReplicaEvent) -> None:
        shard_id, replica_id = replica.shard_id, replica.replica_id
        events = self._events
        match event:
            case LeaderChanged(leader_id, term):
                self._metrics.leader_changed(shard_id)
                events.leader_updated(LeaderInfo(shard_id, replica_id, term, leader_id))
            case MembershipChanged():
                self.sync_routes(replica)
                events.membership_changed(NodeInfo(shard_id, replica_id))
            case ReplicaFailed(reason):
                events.node_failed(FailureInfo(shard_id, replica_id, reason))
                self.unloaded(replica)
            case SnapshotCreated(snapshot, compact_to):
                self._metrics.snapshot("created")
                events.snapshot_created(SnapshotInfo(shard_id, replica_id, snapshot.index))
                if compact_to:
                    events.log_compacted(EntryInfo(shard_id, replica_id, compact_to))
            case SnapshotRecovered(snapshot):
                self._metrics.snapshot("recovered")
                events.snapshot_recovered(SnapshotInfo(shard_id, replica_id, snapshot.index))

    def snapshot_send_started(self, message: pb.Message) -> None:
        self._router.snapshot_send_started(message)

    def log_db_compacted(self, replica: Replica, index: int) -> None:
        self._events.log_db_compacted(EntryInfo(replica.shard_id, replica.replica_id, index))

    def snapshot_compacted(self, shard_id: int, replica_id: int, index: int) -> None:
        """An older snapshot was deleted from disk (on an apply worker)."""
        self._metrics.snapshot("compacted")
        self._events.snapshot_compacted(SnapshotInfo(shard_id, replica_id, index))
