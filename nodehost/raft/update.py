"""The core's output: one value per replica per engine pass, and the order to act on it.

Rules:
- The caller acts on an `Update` in the order its docstring gives, then hands the same
  object back to `Peer.commit_update`. Nothing in it is acted on twice.
- Wire types are the generated protobuf classes, used as is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from protos import raft_pb2 as pb


@dataclass(slots=True)
class ReadContext:
    """Identifies one batch of ReadIndex requests (Raft thesis 6.4), unique per shard."""

    low: int
    high: int


@dataclass(slots=True)
class ReadyToRead:
    """A confirmed ReadIndex: reads of `context` may be served once applied >= index."""

    context: ReadContext
    index: int


@dataclass(slots=True)
class LeaderInfo:
    """Who leads (0 = nobody known) as of `term`; emitted when either changes."""

    leader_id: int
    term: int


@dataclass(slots=True)
class Update:
    """Work for one replica, in this order:

    1. send `replicate` (a leader streams entries while saving them, thesis 10.2.1;
       a follower forwards proposals and reads, which hold nothing it must save),
    2. save `state`, `snapshot`, `entries` in one batch; fsync if `must_sync`.
       A `snapshot` replaces the whole log: entries at and after its index are
       dropped first, then `entries` are appended (a conflicting suffix is overwritten),
    3. send `messages` (a vote sent before 2 could be cast twice after a crash),
    4. `commit_update`, then recover from `snapshot` (if any) and apply `committed`
       (its first `saved_committed` entries may be applied before 2 already: they are
       committed and saved here in an earlier Update, so nothing this save does or
       fails to do can take them back; etcd applies them while it saves, too),
       release `ready_to_reads` once applied reaches their index, fail the proposals
       in `dropped_entries` and reads in `dropped_reads` as "dropped" (retry later).
    5. whenever the state machine has applied more (at once or later), tell the core
       with `Peer.applied_to(index)`: it frees memory and feeds rate limiting.

    One Update is outstanding per replica: `get_update` again only after
    `commit_update`. The entries are the core's own objects: read them, never change
    them.
    """

    shard_id: int
    replica_id: int
    state: pb.State | None = None
    entries: list[pb.Entry] = field(default_factory=list)
    snapshot: pb.Snapshot | None = None
    replicate: list[pb.Message] = field(default_factory=list)
    messages: list[pb.Message] = field(default_factory=list)
    committed: list[pb.Entry] = field(default_factory=list)
    ready_to_reads: list[ReadyToRead] = field(default_factory=list)
    dropped_entries: list[pb.Entry] = field(default_factory=list)
    dropped_reads: list[ReadContext] = field(default_factory=list)
    leader: LeaderInfo | None = None
    must_sync: bool = False
    saved_committed: int = 0
