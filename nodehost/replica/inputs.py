"""What any thread queues for a replica's core; the engine loop drains it in a pass.

Rules:
- Appends come from user threads (proposals, reads, membership changes, leadership
  transfers), the loop (messages from peers, transport reports) and the apply worker
  (a refused snapshot); only the loop pops. A deque's append and popleft are atomic,
  so no lock is taken on the hot path.
- Local inputs are typed: the loop matches on the type, nothing runs a closure.
- `inbox_bytes` counts what the inbox holds of the host's receive queue (loop only).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from nodehost.raft import Refusal
from nodehost.request import RequestState
from protos import raft_pb2 as pb


@dataclass(frozen=True, slots=True)
class ReportUnreachable:
    """The transport could not send to `replica_id`."""

    replica_id: int


@dataclass(frozen=True, slots=True)
class ReportSnapshotStatus:
    """A snapshot streamed to `replica_id` arrived, or failed."""

    replica_id: int
    failed: bool


@dataclass(frozen=True, slots=True)
class TransferLeader:
    """Ask the leader to hand leadership to `target`."""

    target: int


@dataclass(frozen=True, slots=True)
class RefuseMessage:
    """A message found bad after it left the loop (a snapshot whose files did not check
    out): counted and logged by admission, on the loop."""

    message: pb.Message
    refusal: Refusal


LocalInput = ReportUnreachable | ReportSnapshotStatus | TransferLeader | RefuseMessage


class Inputs:
    __slots__ = ("config_changes", "inbox", "inbox_bytes", "local", "proposals", "reads")

    def __init__(self) -> None:
        self.inbox: deque[pb.Message] = deque()  # from peers, passed admission later
        self.inbox_bytes = 0
        self.local: deque[LocalInput] = deque()
        self.proposals: deque[pb.Entry] = deque()
        self.reads: deque[RequestState] = deque()
        self.config_changes: deque[tuple[pb.ConfigChange, int]] = deque()

    def take_inbox_bytes(self) -> int:
        """On the loop: the receive-queue bytes the inbox held since last asked."""
        size, self.inbox_bytes = self.inbox_bytes, 0
        return size

    def discard_inbox(self) -> int:
        """On the loop, for a replica that stopped: nothing received is stepped. Returns
        the receive-queue bytes it held."""
        self.inbox.clear()
        return self.take_inbox_bytes()
