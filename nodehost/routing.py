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

from collections import deque
from collections.abc import Callable, Sequence

from nodehost.engine import Engine
from nodehost.events import ConnectionInfo, EventDispatcher, SnapshotInfo
from nodehost.metrics import Metrics
from protos import raft_pb2 as pb


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
        replicas = engine.nodes
        admit = engine.receive_queue.admit
        for m in messages:
            replica = replicas.get(m.shard_id)
            if replica is None or replica.replica_id != m.to:
                continue
            status = replica.status
            if status.stopped or status.failed:
                continue
            size = admit(m)
            if not size:
                continue
            replica.receive(m, size)
            engine.wake(replica)
        hosts = engine.transport.hosts if engine.transport is not None else None
        if hosts is not None and source_address and hosts.host_at(source_address) is None:
            # By NodeHost id, a replica that just joined knows its peers' ids from the
            # membership they present, not yet where those hosts are. Which host serves
            # at the batch's source address is learned by dialling it and asking, never
            # from the claim; until then replies wait, and the sender repeats itself.
            hosts.look_at(source_address)

    def on_unreachable(self, shard_id: int, replica_id: int) -> None:
        engine = self._engine
        replica = engine.nodes.get(shard_id)
        if replica is not None:
            replica.report_unreachable(replica_id)
            engine.wake(replica)

    def snapshot_send_started(self, message: pb.Message) -> None:
        """A snapshot is handed to the transport to stream to `message.to`."""
        key = (message.shard_id, message.to)
        self._sending.setdefault(key, deque()).append((message.snapshot.index, message.from_id))
        self._events.send_snapshot_started(
            SnapshotInfo(message.shard_id, message.to, message.snapshot.index, message.from_id)
        )

    def on_snapshot_status(self, shard_id: int, replica_id: int, failed: bool) -> None:
        engine = self._engine
        replica = engine.nodes.get(shard_id)
        if replica is not None:
            replica.report_snapshot_status(replica_id, failed)
            engine.wake(replica)
        index = from_id = 0
        sending = self._sending.get((shard_id, replica_id))
        if sending:
            index, from_id = sending.popleft()
            if not sending:
                del self._sending[(shard_id, replica_id)]
        info = SnapshotInfo(shard_id, replica_id, index, from_id)
        if failed:
            self._metrics.snapshot("send_aborted")
            self._events.send_snapshot_aborted(info)
        else:
            self._metrics.snapshot("sent")
            self._events.send_snapshot_completed(info)

    def on_snapshot_received(self, message: pb.Message) -> None:
        replica = self._engine.nodes.get(message.shard_id)
        if replica is None or replica.replica_id != message.to or replica.status.stopped:
            return
        admission = replica.loop.admission
        if admission is not None and not admission.check_snapshot(replica.loop, message):
            replica.discard_received(message.snapshot)  # its files: disk IO, apply worker
            return
        self._metrics.snapshot("received")
        self._events.snapshot_received(
            SnapshotInfo(message.shard_id, message.to, message.snapshot.index, message.from_id)
        )
        replica.install_snapshot(message)

    def snapshot_dir(self, shard_id: int, replica_id: int, index: int) -> str | None:
        replica = self._engine.nodes.get(shard_id)
        if replica is None or replica.replica_id != replica_id:
            return None
        return replica.receive_dir(index)

    def is_hosted(self, shard_id: int, replica_id: int) -> bool:
        if self._closing():
            # Peers keep sending until they notice we left: while closing, messages for
            # the replicas just stopped are expected, so they pass here unlogged and
            # on_messages drops them.
            return True
        replica = self._engine.nodes.get(shard_id)
        return replica is not None and replica.replica_id == replica_id

    def on_connection(self, address: str, established: bool) -> None:
        info = ConnectionInfo(address)
        if established:
            self._events.connection_established(info)
        else:
            self._events.connection_failed(info)
