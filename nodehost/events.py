"""Event listeners: how an application learns about leaders, membership and snapshots.

Rules:
- Listener methods run on one thread per NodeHost (the runtime's, nodehost.runtime), in
  the order the events happened, never on the engine loop: a slow listener delays other
  events, never Raft.
- An exception in a listener is logged and swallowed (by the runtime).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LeaderInfo:
    shard_id: int
    replica_id: int
    term: int
    leader_id: int  # 0 while no leader is known


@dataclass(frozen=True, slots=True)
class NodeInfo:
    shard_id: int
    replica_id: int


@dataclass(frozen=True, slots=True)
class FailureInfo:
    shard_id: int
    replica_id: int
    reason: str  # what failed: the replica stopped, the NodeHost and other replicas go on


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    shard_id: int
    replica_id: int
    index: int
    from_id: int = 0


@dataclass(frozen=True, slots=True)
class EntryInfo:
    shard_id: int
    replica_id: int
    index: int


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    address: str
    snapshot_connection: bool = False


class IRaftEventListener:
    """Subclass and override what you need."""

    def leader_updated(self, info: LeaderInfo) -> None:
        """A replica on this NodeHost saw a new leader (or lost it: leader_id 0)."""


class ISystemEventListener:
    """Subclass and override what you need; every method defaults to doing nothing."""

    def node_host_shutting_down(self) -> None: ...
    def node_ready(self, info: NodeInfo) -> None: ...
    def node_unloaded(self, info: NodeInfo) -> None: ...
    def node_deleted(self, info: NodeInfo) -> None: ...
    def node_failed(self, info: FailureInfo) -> None:
        """A replica stopped on a failure of its own (its state machine raised, its
        core or its log refused what it was given): get_node_host_info shows it as
        failed, its requests fail with ShardClosed, stop_shard and start it again."""

    def membership_changed(self, info: NodeInfo) -> None: ...
    def connection_established(self, info: ConnectionInfo) -> None: ...
    def connection_failed(self, info: ConnectionInfo) -> None: ...
    def send_snapshot_started(self, info: SnapshotInfo) -> None: ...
    def send_snapshot_completed(self, info: SnapshotInfo) -> None: ...
    def send_snapshot_aborted(self, info: SnapshotInfo) -> None: ...
    def snapshot_received(self, info: SnapshotInfo) -> None: ...
    def snapshot_recovered(self, info: SnapshotInfo) -> None: ...
    def snapshot_created(self, info: SnapshotInfo) -> None: ...
    def snapshot_compacted(self, info: SnapshotInfo) -> None: ...
    def log_compacted(self, info: EntryInfo) -> None: ...
    def log_db_compacted(self, info: EntryInfo) -> None: ...


class EventDispatcher:
    """Hands listener calls to `post`, which runs them in order off the engine loop (the
    runtime's listener thread: nodehost.runtime). One method per event, each typed by
    the information it carries; nothing is looked up by name."""

    def __init__(
        self,
        raft: IRaftEventListener | None,
        system: ISystemEventListener | None,
        post: Callable[[Callable[[], None]], None],
    ) -> None:
        self.raft = raft
        self.system = system
        self._post = post

    def leader_updated(self, info: LeaderInfo) -> None:
        raft = self.raft
        if raft is not None:
            self._post(lambda: raft.leader_updated(info))

    def node_host_shutting_down(self) -> None:
        system = self.system
        if system is not None:
            self._post(system.node_host_shutting_down)

    def node_ready(self, info: NodeInfo) -> None:
        system = self.system
        if system is not None:
            self._post(lambda: system.node_ready(info))

    def node_unloaded(self, info: NodeInfo) -> None:
        system = self.system
        if system is not None:
            self._post(lambda: system.node_unloaded(info))

    def node_deleted(self, info: NodeInfo) -> None:
        system = self.system
        if system is not None:
            self._post(lambda: system.node_deleted(info))

    def node_failed(self, info: FailureInfo) -> None:
        system = self.system
        if system is not None:
            self._post(lambda: system.node_failed(info))

    def membership_changed(self, info: NodeInfo) -> None:
        system = self.system
        if system is not None:
            self._post(lambda: system.membership_changed(info))

    def connection_established(self, info: ConnectionInfo) -> None:
        system = self.system
        if system is not None:
            self._post(lambda: system.connection_established(info))

    def connection_failed(self, info: ConnectionInfo) -> None:
        system = self.system
        if system is not None:
            self._post(lambda: system.connection_failed(info))

    def send_snapshot_started(self, info: SnapshotInfo) -> None:
        system = self.system
        if system is not None:
            self._post(lambda: system.send_snapshot_started(info))

    def send_snapshot_completed(self, info: SnapshotInfo) -> None:
        system = self.system
        if system is not None:
            self._post(lambda: system.send_snapshot_completed(info))

    def send_snapshot_aborted(self, info: SnapshotInfo) -> None:
        system = self.system
        if system is not None:
            self._post(lambda: system.send_snapshot_aborted(info))

    def snapshot_received(self, info: SnapshotInfo) -> None:
        system = self.system
        if system is not None:
            self._post(lambda: system.snapshot_received(info))

    def snapshot_recovered(self, info: SnapshotInfo) -> None:
        system = self.system
        if system is not None:
            self._post(lambda: system.snapshot_recovered(info))

    def snapshot_created(self, info: SnapshotInfo) -> None:
        system = self.system
        if system is not None:
            self._post(lambda: system.snapshot_created(info))

    def snapshot_compacted(self, info: SnapshotInfo) -> None:
        system = self.system
        if system is not None:
            self._post(lambda: system.snapshot_compacted(info))

    def log_compacted(self, info: EntryInfo) -> None:
        system = self.system
        if system is not None:
            self._post(lambda: system.log_compacted(info))

    def log_db_compacted(self, info: EntryInfo) -> None:
        system = self.system
        if system is not None:
            self._post(lambda: system.log_db_compacted(info))
