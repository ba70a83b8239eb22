"""What the engine reports about its replicas, turned into what users and peers see:
metrics, system and Raft events, and the transport's routes.

Rules:
- Called on the engine loop, except `snapshot_created`'s sources on an apply worker (the
  events it raises are queued for the listener thread either way: nothing here blocks).
- Routes follow memberships only (inbound.py): the one a replica applied replaces what
  the transport knew of its shard; removed replicas lose theirs.
- `node_unloaded` goes out once per replica, whether it failed, was stopped, or both.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from nodehost.engine import EngineListener
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
from nodehost.routing import TransportRouter
from protos import raft_pb2 as pb
from transport import Registry

if TYPE_CHECKING:
    from nodehost.node import Node


class HostReports(EngineListener):
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

    def sync_routes(self, node: Node) -> None:
        """Point the transport at the addresses in the core's membership (on the loop)."""
        registry = self._registry
        m = node.membership
        learn_routes(registry, node.shard_id, m, replace=True)
        for rid in m.removed:
            registry.remove(node.shard_id, rid)

    def unloaded(self, node: Node) -> None:
        """node_unloaded, once per replica, however many ways it stopped."""
        with self._lock:
            if node.unload_reported:
                return
            node.unload_reported = True
        self._events.system_event("node_unloaded", NodeInfo(node.shard_id, node.replica_id))

    # EngineListener

    def leader_changed(self, node: Node) -> None:
        self._metrics.leader_changed(node.shard_id)
        self._events.leader_updated(
            LeaderInfo(node.shard_id, node.replica_id, node.term, node.leader_id)
        )

    def membership_changed(self, node: Node) -> None:
        self.sync_routes(node)
        self._events.system_event("membership_changed", NodeInfo(node.shard_id, node.replica_id))

    def replica_failed(self, node: Node, reason: str) -> None:
        self._events.system_event(
            "node_failed", FailureInfo(node.shard_id, node.replica_id, reason)
        )
        self.unloaded(node)

    def snapshot_created(self, node: Node, snapshot: pb.Snapshot, compacted_to: int) -> None:
        self._metrics.snapshot("created")
        info = SnapshotInfo(node.shard_id, node.replica_id, snapshot.index)
        self._events.system_event("snapshot_created", info)
        if compacted_to:
            self._events.system_event(
                "log_compacted", EntryInfo(node.shard_id, node.replica_id, compacted_to)
            )

    def snapshot_recovered(self, node: Node, snapshot: pb.Snapshot) -> None:
        self._metrics.snapshot("recovered")
        self._events.system_event(
            "snapshot_recovered", SnapshotInfo(node.shard_id, node.replica_id, snapshot.index)
        )

    def snapshot_send_started(self, message: pb.Message) -> None:
        self._router.snapshot_send_started(message)

    def log_db_compacted(self, node: Node, index: int) -> None:
        self._events.system_event(
            "log_db_compacted", EntryInfo(node.shard_id, node.replica_id, index)
        )

    def snapshot_compacted(self, shard_id: int, replica_id: int, index: int) -> None:
        """An older snapshot was deleted from disk (on an apply worker)."""
        self._metrics.snapshot("compacted")
        self._events.system_event("snapshot_compacted", SnapshotInfo(shard_id, replica_id, index))
