"""One replica inside a NodeHost, split by the thread that owns each part.

- `Replica` (replica.py): what the NodeHost and the router call: propose, read,
  change membership, snapshot, install a received snapshot; views for user threads.
- `LoopSide` (stepping.py): owned by the engine loop: the Raft core, its log view,
  stepping the inputs and acting on each update.
- `ApplySide` (applying.py): owned by the apply worker: the state machine layer, the
  snapshot store, the typed apply tasks.
- `Requests` (requests.py): the requests it owes an answer, thread-safe.
- `Inputs` (inputs.py): what any thread queues for the core, thread-safe.
- `EngineLink` (link.py): the four things a replica may ask of its engine, and the
  typed events it reports (events.py). A replica never holds the engine.
"""

from nodehost.replica.events import (
    LeaderChanged,
    MembershipChanged,
    ReplicaEvent,
    ReplicaFailed,
    SnapshotCreated,
    SnapshotReady,
    SnapshotRecovered,
)
from nodehost.replica.link import EngineLink
from nodehost.replica.replica import Replica, ReplicaMetrics, SnapshotRequest

__all__ = [
    "EngineLink",
    "LeaderChanged",
    "MembershipChanged",
    "Replica",
    "ReplicaEvent",
    "ReplicaFailed",
    "ReplicaMetrics",
    "SnapshotCreated",
    "SnapshotReady",
    "SnapshotRecovered",
    "SnapshotRequest",
]
