"""Delivers what the transport receives to the replicas hosted here.

Runs on the engine loop. A message for a shard or replica not hosted here is dropped
(the transport already counts and logs what it rejects); every other one is queued for
its replica, bounded by the host's receive queue (receive.py), and admission checks it
before the core sees it (inbound.py). An incoming snapshot is checked first, then moved
into the replica's store on its apply worker, then checked again as a message.

Routes (addresses) are never learned here: a batch's source address is only what the
peer claims about itself. They come from memberships (inbound.py, NodeHost). By NodeHost
id, an unknown source address is only dialled, to ask which host is there.

Snapshots streamed out are remembered per target (shard, replica) from the moment they
leave until the transport reports their outcome (exactly once per stream, except when
it closes), so the send_snapshot_* events carry the index of the snapshot they are about.
"""

from __future__ import annotations

import os
import shutil
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from nodehost.engine import Engine
from nodehost.events import ConnectionInfo, EventDispatcher, SnapshotInfo
from nodehost.metrics import Metrics
from nodehost.raft import Refusal
from protos import raft_pb2 as pb

if TYPE_CHECKING:
    from nodehost.node import Node


class TransportRouter:
    """Routes what the transport receives to replicas (called on the engine loop)."""

    def __init__(
        self,
        engine: Engine,
        events: EventDispatcher,
        metrics: Metrics,
        closing: Callable[[], bool],
    ) -> None:
        self._engine = engine
        self._events = events
        self._metrics = metrics
        self._closing = closing  # True once the NodeHost is closing
        # (shard, target replica) -> (index, from_id) of each snapshot on its way there.
        self._sending: dict[tuple[int, int], deque[tuple[int, int]]] = {}

    def on_messages(self, source_address: str, messages: Sequence[pb.Message]) -> None:
        engine = self._engine
        nodes = engine.nodes
        admit = engine.receive_queue.admit
        for m in messages:
            node = nodes.get(m.shard_id)
            if node is None or node.replica_id != m.to or node.stopped or node.failed:
                continue
            size = admit(m)
            if not size:
                continue
            node.inbox_bytes += size
            node.inbox.append(m)
            engine.wake(node)
        hosts = engine.transport.hosts if engine.transport is not None else None
        if hosts is not None and source_address and hosts.host_at(source_address) is None:
            # By NodeHost id, a replica that just joined knows its peers' ids from the
            # membership they present, not yet where those hosts are. Which host serves
            # at the batch's source address is learned by dialling it and asking, never
            # from the claim; until then replies wait, and the sender repeats itself.
            hosts.look_at(source_address)

    def on_unreachable(self, shard_id: int, replica_id: int) -> None:
        engine = self._engine
        node = engine.nodes.get(shard_id)
        if node is not None:
            node.local_calls.append(lambda peer: peer.report_unreachable(replica_id))
            engine.wake(node)

    def snapshot_send_started(self, message: pb.Message) -> None:
        """A snapshot is handed to the transport to stream to `message.to`."""
        key = (message.shard_id, message.to)
        self._sending.setdefault(key, deque()).append((message.snapshot.index, message.from_id))
        self._events.system_event(
            "send_snapshot_started",
            SnapshotInfo(message.shard_id, message.to, message.snapshot.index, message.from_id),
        )

    def on_snapshot_status(self, shard_id: int, replica_id: int, failed: bool) -> None:
        engine = self._engine
        node = engine.nodes.get(shard_id)
        if node is not None:
            node.local_calls.append(lambda peer: peer.report_snapshot_status(replica_id, failed))
            engine.wake(node)
        index = from_id = 0
        sending = self._sending.get((shard_id, replica_id))
        if sending:
            index, from_id = sending.popleft()
            if not sending:
                del self._sending[(shard_id, replica_id)]
        event = "send_snapshot_aborted" if failed else "send_snapshot_completed"
        self._metrics.snapshot("send_aborted" if failed else "sent")
        self._events.system_event(event, SnapshotInfo(shard_id, replica_id, index, from_id))

    def on_snapshot_received(self, message: pb.Message) -> None:
        engine = self._engine
        node = engine.nodes.get(message.shard_id)
        if node is None or node.replica_id != message.to or node.stopped:
            return
        admission = node.admission
        if admission is not None and not admission.check_snapshot(node, message):
            _discard_received(node, message.snapshot)
            return
        self._metrics.snapshot("received")
        self._events.system_event(
            "snapshot_received",
            SnapshotInfo(message.shard_id, message.to, message.snapshot.index, message.from_id),
        )

        def install() -> None:
            if not node.install_received(message):  # its files do not check out
                _remove_received(node, message.snapshot)
                if admission is not None:
                    engine.loop.call_soon_threadsafe(
                        admission.refuse, node, message, Refusal.BAD_SNAPSHOT
                    )

        node.submit_apply("call", install)

    def snapshot_dir(self, shard_id: int, replica_id: int, index: int) -> str | None:
        node = self._engine.nodes.get(shard_id)
        if node is None or node.replica_id != replica_id:
            return None
        return node.snapshots.receive_dir(index)

    def is_hosted(self, shard_id: int, replica_id: int) -> bool:
        if self._closing():
            # Peers keep sending until they notice we left: while closing, messages for
            # the replicas just stopped are expected, so they pass here unlogged and
            # on_messages drops them.
            return True
        node = self._engine.nodes.get(shard_id)
        return node is not None and node.replica_id == replica_id

    def on_connection(self, address: str, established: bool) -> None:
        event = "connection_established" if established else "connection_failed"
        self._events.system_event(event, ConnectionInfo(address))


def _discard_received(node: Node, snapshot: pb.Snapshot) -> None:
    """Remove the files of a refused snapshot (on the apply worker: it is disk IO)."""
    node.submit_apply("call", lambda: _remove_received(node, snapshot))


def _remove_received(node: Node, snapshot: pb.Snapshot) -> None:
    directory = os.path.dirname(snapshot.filepath)
    if os.path.dirname(directory) == node.snapshots.dir and directory.endswith(".receiving"):
        shutil.rmtree(directory, ignore_errors=True)
