"""What the engine implements for the transport, and what every transport offers it.

Rules:
- Both sides run on the NodeHost's event loop: the transport calls the handler on that
  loop, and the engine calls `send`/`send_snapshot` there. Neither ever blocks it.
- The handler only ever sees messages that passed every check (see inbound.py).
- Handler methods should not raise; if one does, the error is logged and counted
  (stats.handler_errors) and the transport carries on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from protos import raft_pb2 as pb
from transport.faults import FaultHook
from transport.hosts import HostRegistry
from transport.registry import Registry
from transport.stats import TransportStats


class TransportHandler(Protocol):
    def on_messages(self, source_address: str, messages: Sequence[pb.Message]) -> None:
        """Checked messages of one batch. `source_address` is what the peer claims: log
        it, never route by it. The sequence is only valid during the call."""

    def on_unreachable(self, shard_id: int, replica_id: int) -> None:
        """A message to this replica could not be sent (its host is down, or unknown)."""

    def on_snapshot_status(self, shard_id: int, replica_id: int, failed: bool) -> None:
        """The outcome of `send_snapshot` to this replica; failed: the core retries."""

    def on_snapshot_received(self, message: pb.Message) -> None:
        """An INSTALL_SNAPSHOT whose snapshot.filepath (and files[].filepath) name the
        local, complete copy, already renamed into place."""

    def snapshot_dir(self, shard_id: int, replica_id: int, index: int) -> str | None:
        """The directory to place an incoming snapshot in (missing parents are made;
        if it exists already, it is taken as an earlier complete copy and kept); None:
        not hosted here, the transfer is rejected."""

    def is_hosted(self, shard_id: int, replica_id: int) -> bool: ...

    def on_connection(self, address: str, established: bool) -> None:
        """The batch stream to `address` opened (True), or failed to open or broke
        (False, once per failed attempt): for the engine's connection events."""


class ITransport(Protocol):
    registry: Registry
    stats: TransportStats
    # Where each NodeHost id answers (NodeHostConfig.address_by_node_host_id); None in
    # the default mode, where memberships hold addresses.
    hosts: HostRegistry | None

    async def start(self) -> None:
        """Bind and serve; raises BindError when the address is taken."""

    async def close(self) -> None:
        """Stop serving and sending; idempotent. Queued messages are dropped."""

    def send(self, messages: Iterable[pb.Message]) -> None:
        """Queue each message for its target's address; never blocks or raises on a
        full queue (the message is dropped and counted) or an unknown target (the
        core is told the replica is unreachable). An INSTALL_SNAPSHOT may come here
        only when metadata-only (witness or dummy, no file): a receiver refuses any
        other in a batch; those go through `send_snapshot`."""

    def send_snapshot(self, message: pb.Message) -> None:
        """Stream the files of a file-backed INSTALL_SNAPSHOT in the background; the
        outcome arrives as handler.on_snapshot_status."""

    def set_fault_hook(self, hook: FaultHook | None) -> None:
        """Tests only: inject network faults (see faults.py)."""

    def queued_bytes(self, address: str) -> int:
        """Bytes waiting to be sent to `address`."""
