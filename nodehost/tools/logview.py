"""One replica's saved log as the offline commands see it: its range, hard state,
snapshot record, and the membership its config-change entries lead to.

Rules:
- Reads only, through the log store's public interface (ILogDB).
- Membership is replayed with the same rules the replica applies
  (nodehost.raft.membership), from the snapshot's membership through the entries
  after it. A replica started with ordered_config_change skips changes that name a
  stale membership; that setting is not on disk, so `membership_at` takes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from logdb import ILogDB
from nodehost.admin.values import MembershipView
from nodehost.raft import membership as rules
from protos import raft_pb2 as pb

_CHUNK_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Record:
    """One replica's share of a log store `save` (the shape of logdb.SaveRecord)."""

    shard_id: int
    replica_id: int
    state: pb.State | None
    entries: list[pb.Entry]
    snapshot: pb.Snapshot | None = None
    must_sync: bool = True


@dataclass(frozen=True, slots=True)
class ReplicaLog:
    shard_id: int
    replica_id: int
    state: pb.State
    first_index: int
    last_index: int
    last_term: int
    snapshot: pb.Snapshot | None
    bootstrap: pb.Bootstrap | None

    @property
    def snapshot_index(self) -> int:
        return self.snapshot.index if self.snapshot is not None else 0

    @property
    def is_empty(self) -> bool:
        return self.last_index == 0 and self.state.term == 0 and self.snapshot_index == 0


def load(logdb: ILogDB, shard_id: int, replica_id: int) -> ReplicaLog | None:
    raft_state = logdb.read_state(shard_id, replica_id)
    bootstrap = logdb.get_bootstrap(shard_id, replica_id)
    if raft_state is None:
        if bootstrap is None:
            return None
        return ReplicaLog(shard_id, replica_id, pb.State(), 1, 0, 0, None, bootstrap)
    last = raft_state.last_index
    return ReplicaLog(
        shard_id=shard_id,
        replica_id=replica_id,
        state=raft_state.state,
        first_index=raft_state.first_index,
        last_index=last,
        last_term=logdb.term(shard_id, replica_id, last) if last > 0 else 0,
        snapshot=raft_state.snapshot,
        bootstrap=bootstrap,
    )


def term_at(logdb: ILogDB, log: ReplicaLog, index: int) -> int | None:
    """The term of entry `index` in this log; None when compacted away or past its end."""
    if index == 0:
        return 0
    if index == log.snapshot_index and log.snapshot is not None:
        return log.snapshot.term
    if not log.first_index <= index <= log.last_index:
        return None
    return logdb.term(log.shard_id, log.replica_id, index)


def entries(logdb: ILogDB, log: ReplicaLog, low: int, high: int) -> Iterator[pb.Entry]:
    """Entries [low, high) of the log, read a few MiB at a time."""
    index = max(low, log.first_index)
    while index < high:
        batch = logdb.entries(log.shard_id, log.replica_id, index, high, _CHUNK_BYTES)
        yield from batch
        index = batch[-1].index + 1


@dataclass(frozen=True, slots=True)
class ConfigChangeEntry:
    index: int
    change: pb.ConfigChange
    refused: str | None  # why the replica does not apply it, or None


def describe_change(cc: pb.ConfigChange) -> str:
    kind = pb.ConfigChangeType.Name(cc.type)
    return f"{kind} {cc.replica_id}" + (f" at {cc.address}" if cc.address else "")


def config_changes(logdb: ILogDB, log: ReplicaLog) -> list[tuple[int, pb.ConfigChange]]:
    """Every config change in the log after the snapshot, with its index (one read)."""
    return [
        (entry.index, pb.ConfigChange.FromString(entry.cmd))
        for entry in entries(logdb, log, log.snapshot_index + 1, log.last_index + 1)
        if entry.type == pb.CONFIG_CHANGE
    ]


def replay(
    log: ReplicaLog,
    changes: list[tuple[int, pb.ConfigChange]],
    index: int,
    *,
    ordered: bool = False,
) -> tuple[pb.Membership, list[ConfigChangeEntry]]:
    """The membership after applying `changes` through `index` to the snapshot's, and
    what became of each change."""
    m = pb.Membership()
    if log.snapshot is not None:
        m.CopyFrom(log.snapshot.membership)
    out: list[ConfigChangeEntry] = []
    for at, cc in changes:
        if at > index:
            break
        refused = rules.check(m, cc, ordered)
        if refused is None:
            rules.apply(m, cc, at)
        out.append(ConfigChangeEntry(at, cc, refused))
    return m, out


def membership_at(
    logdb: ILogDB, log: ReplicaLog, index: int, *, ordered: bool = False
) -> tuple[pb.Membership, list[ConfigChangeEntry]]:
    """The membership after applying the log through `index`, and each config change
    met on the way after the snapshot."""
    return replay(log, config_changes(logdb, log), index, ordered=ordered)


def view(m: pb.Membership) -> MembershipView:
    return MembershipView(
        config_change_id=m.config_change_id,
        voters=dict(m.addresses),
        non_votings=dict(m.non_votings),
        witnesses=dict(m.witnesses),
        removed=sorted(m.removed),
    )
