"""What a replica reports to its engine: one small value per kind, matched on its type.

Replicas report through their link (link.py); the engine drains the reports on its
loop, in the order they were made, and hands each to the NodeHost's listener
(reports.py), which turns it into metrics, routes and the user's events. Nothing is
dispatched by a method's name.

Rules: values only (no reference back to the replica: the link knows whose it is);
each is made once, by the thread named beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

from protos import raft_pb2 as pb


@dataclass(frozen=True, slots=True)
class LeaderChanged:
    """The core saw a new leader, or lost it (leader_id 0). On the loop."""

    leader_id: int
    term: int


@dataclass(frozen=True, slots=True)
class MembershipChanged:
    """The core's membership changed (a config change committed). On the loop."""

    membership: pb.Membership


@dataclass(frozen=True, slots=True)
class ReplicaFailed:
    """The replica stopped on a failure of its own. On the apply worker."""

    reason: str


@dataclass(frozen=True, slots=True)
class SnapshotCreated:
    """A snapshot was saved and recorded in the log store; the log may be compacted up
    to `compact_to` (0: not at all). On the apply worker."""

    snapshot: pb.Snapshot
    compact_to: int


@dataclass(frozen=True, slots=True)
class SnapshotRecovered:
    """The state machine was rebuilt from a snapshot (an install). On the apply worker."""

    snapshot: pb.Snapshot


@dataclass(frozen=True, slots=True)
class SnapshotReady:
    """A snapshot made for a follower (on-disk state machines) is ready to stream;
    `message` is its INSTALL_SNAPSHOT. On the apply worker."""

    message: pb.Message


ReplicaEvent = (
    LeaderChanged
    | MembershipChanged
    | ReplicaFailed
    | SnapshotCreated
    | SnapshotRecovered
    | SnapshotReady
)
