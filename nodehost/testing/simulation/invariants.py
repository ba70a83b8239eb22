"""Raft's safety properties, checked on everything a simulated run writes and applies.

The checker sees three things: every log-store write a replica's engine was told
succeeded (`ObservedLogDB`, wrapped around each host's store), every entry a state
machine applies (machines.py), and every leader a replica reports. From them, while
the run goes on:

- Election Safety: at most one leader per shard and term; and no replica changes its
  acknowledged vote within a term (a vote lost in a crash is how two leaders happen).
- Log Matching: two replicas holding an entry with the same index and term hold the
  same entry.
- Leader Completeness, as seen from the logs: no replica overwrites an entry it knew
  to be committed, and no two replicas commit different entries at one index (a
  replica cut off with an old leader may hold other, uncommitted entries there).
- State Machine Safety: no two replicas apply different commands at one index; no
  replica applies an index twice or out of order without recovering from a snapshot.
- Durability: after a crash, what a restarted replica's store holds includes every
  acknowledged term, vote and entry (a commit index alone may be lost: it was never
  synced, and is learned again).

Rules:
- Only acknowledged writes count: a write that failed, or that a crash cut off before it
  returned, promised nothing.
- A violation is recorded with the simulated time and run goes on; the run fails if
  any was found.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from logdb import ILogDB, RaftState, SaveRecord, WriteError
from protos import raft_pb2 as pb

ReplicaKey = tuple[int, int]  # (shard, replica)


@dataclass(frozen=True, slots=True)
class Violation:
    kind: str  # election-safety, log-matching, leader-completeness, state-machine-safety, ...
    detail: str
    time: float


@dataclass(slots=True)
class _Acked:
    """What a replica's store was told and acknowledged, as the replica sees its log."""

    term: int = 0
    vote: int = 0
    commit: int = 0
    snapshot_index: int = 0
    entries: dict[int, tuple[int, bytes]] = field(default_factory=dict)  # index -> (term, bytes)


class SafetyChecker:
    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self.violations: list[Violation] = []
        self._acked: dict[ReplicaKey, _Acked] = {}
        self._by_term: dict[tuple[int, int, int], bytes] = {}  # (shard, index, term)
        self._committed: dict[tuple[int, int], tuple[int, bytes]] = {}  # (shard, index)
        self._applied: dict[tuple[int, int], bytes] = {}  # (shard, index) -> cmd
        self._last_applied: dict[ReplicaKey, int] = {}
        self._leaders: dict[tuple[int, int], int] = {}  # (shard, term) -> leader
        self.applied_count = 0
        self.failed_writes = 0  # refused by a full disk

    def _violate(self, kind: str, detail: str) -> None:
        self.violations.append(Violation(kind, detail, self._now()))

    # ------------------------------------------------------------------ leaders

    def leader(self, shard_id: int, term: int, leader_id: int, reporter: int) -> None:
        if not leader_id:
            return
        known = self._leaders.setdefault((shard_id, term), leader_id)
        if known != leader_id:
            self._violate(
                "election-safety",
                f"shard {shard_id} term {term}: replica {reporter} names leader {leader_id}, "
                f"another replica named {known}",
            )

    # ------------------------------------------------------------------ log writes

    def saved(self, records: Sequence[SaveRecord]) -> None:
        for r in records:
            self._saved_one(r)

    def _saved_one(self, r: SaveRecord) -> None:
        shard = r.shard_id
        key = (shard, r.replica_id)
        acked = self._acked.get(key)
        if acked is None:
            acked = self._acked[key] = _Acked()
        if r.snapshot is not None and r.snapshot.index:
            acked.entries = {}
            acked.snapshot_index = max(acked.snapshot_index, r.snapshot.index)
        if r.entries:
            first = r.entries[0].index
            new = {e.index: e for e in r.entries}
            for index in [i for i in acked.entries if i >= first]:
                old = acked.entries.pop(index)
                replaced = new.get(index)
                if index <= acked.commit and (
                    replaced is None or (replaced.term, replaced.SerializeToString()) != old
                ):
                    # A replica may hold entries no majority has, which a later leader
                    # overwrites; never one it knew to be committed.
                    self._violate(
                        "leader-completeness",
                        f"shard {shard} replica {r.replica_id} overwrote entry {index} of term "
                        f"{old[0]}, which it knew committed (commit index {acked.commit})",
                    )
            by_term = self._by_term
            for e in r.entries:
                blob = e.SerializeToString()
                acked.entries[e.index] = (e.term, blob)
                seen = by_term.setdefault((shard, e.index, e.term), blob)
                if seen != blob:
                    self._violate(
                        "log-matching",
                        f"shard {shard} index {e.index} term {e.term}: replica {r.replica_id} "
                        "holds an entry that differs from another replica's",
                    )
        state = r.state
        if state is not None:
            if state.term < acked.term:
                self._violate(
                    "durability",
                    f"shard {shard} replica {r.replica_id}: term went back from {acked.term} "
                    f"to {state.term}",
                )
            elif state.term == acked.term and acked.vote and state.vote != acked.vote:
                self._violate(
                    "election-safety",
                    f"shard {shard} replica {r.replica_id} voted for {acked.vote} and then "
                    f"for {state.vote} in term {state.term}",
                )
            for index in range(max(acked.commit, acked.snapshot_index) + 1, state.commit + 1):
                entry = acked.entries.get(index)
                if entry is None:
                    continue
                done = self._committed.setdefault((shard, index), entry)
                if done != entry:
                    self._violate(
                        "leader-completeness",
                        f"shard {shard} index {index}: replica {r.replica_id} committed an entry "
                        f"of term {entry[0]}, another replica one of term {done[0]}",
                    )
            acked.term, acked.vote = state.term, state.vote
            acked.commit = max(acked.commit, state.commit)

    def local_snapshot(self, shard_id: int, replica_id: int, index: int) -> None:
        acked = self._acked.setdefault((shard_id, replica_id), _Acked())
        acked.snapshot_index = max(acked.snapshot_index, index)

    def compacted(self, shard_id: int, replica_id: int, index: int) -> None:
        acked = self._acked.get((shard_id, replica_id))
        if acked is not None:
            for i in [i for i in acked.entries if i <= index]:
                del acked.entries[i]

    def removed(self, shard_id: int, replica_id: int) -> None:
        self._acked.pop((shard_id, replica_id), None)

    # ------------------------------------------------------------------ restarts

    def recovered(self, store: ILogDB, replicas: Sequence[ReplicaKey]) -> None:
        """After a crash: what the reopened `store` holds of each replica includes what
        was acknowledged (durable) before it."""
        for shard, replica in replicas:
            acked = self._acked.get((shard, replica))
            if acked is None:
                continue
            found: RaftState | None = store.read_state(shard, replica)
            if found is None:
                if acked.term or acked.entries:
                    self._violate(
                        "durability",
                        f"shard {shard} replica {replica}: the store lost everything acknowledged",
                    )
                continue
            if (found.state.term, found.state.vote) != (acked.term, acked.vote):
                self._violate(
                    "durability",
                    f"shard {shard} replica {replica}: acknowledged term {acked.term} vote "
                    f"{acked.vote}, found term {found.state.term} vote {found.state.vote} "
                    "after the crash",
                )
            low = max(found.first_index, (found.snapshot.index + 1) if found.snapshot else 1)
            wanted = sorted(i for i in acked.entries if i >= low)
            if not wanted:
                self._resync(acked, found)
                continue
            if found.last_index < wanted[-1]:
                self._violate(
                    "durability",
                    f"shard {shard} replica {replica}: entries up to {wanted[-1]} were "
                    f"acknowledged, the store holds up to {found.last_index} after the crash",
                )
            else:
                held = store.entries(shard, replica, wanted[0], wanted[-1] + 1, 1 << 62)
                for e in held:
                    expected = acked.entries.get(e.index)
                    if expected is not None and expected != (e.term, e.SerializeToString()):
                        self._violate(
                            "durability",
                            f"shard {shard} replica {replica}: entry {e.index} changed in the crash",
                        )
                        break
            self._resync(acked, found)

    @staticmethod
    def _resync(acked: _Acked, found: RaftState) -> None:
        acked.commit = found.state.commit  # an unsynced commit index may be lost
        if found.snapshot is not None:
            acked.snapshot_index = max(acked.snapshot_index, found.snapshot.index)

    # ------------------------------------------------------------------ applies

    def applied(self, shard_id: int, replica_id: int, index: int, cmd: bytes) -> None:
        self.applied_count += 1
        key = (shard_id, replica_id)
        last = self._last_applied.get(key, 0)
        if index <= last:
            self._violate(
                "state-machine-safety",
                f"shard {shard_id} replica {replica_id} applied index {index} after {last}",
            )
        self._last_applied[key] = index
        known = self._applied.setdefault((shard_id, index), cmd)
        if known != cmd:
            self._violate(
                "state-machine-safety",
                f"shard {shard_id} index {index}: replica {replica_id} applied {cmd[:40]!r}, "
                f"another replica {known[:40]!r}",
            )

    def rebuilt(self, shard_id: int, replica_id: int) -> None:
        """The replica's state machine starts over (a new process, or a snapshot)."""
        self._last_applied.pop((shard_id, replica_id), None)


class ObservedLogDB:
    """A host's log store, with every acknowledged write told to the checker."""

    def __init__(self, inner: ILogDB, checker: SafetyChecker) -> None:
        self.inner = inner
        self._checker = checker

    def save(self, updates: Sequence[SaveRecord]) -> None:
        try:
            self.inner.save(updates)
        except WriteError:
            self._checker.failed_writes += 1
            raise
        self._checker.saved(updates)

    def read_state(self, shard_id: int, replica_id: int) -> RaftState | None:
        return self.inner.read_state(shard_id, replica_id)

    def entries(
        self, shard_id: int, replica_id: int, low: int, high: int, max_bytes: int
    ) -> list[pb.Entry]:
        return self.inner.entries(shard_id, replica_id, low, high, max_bytes)

    def term(self, shard_id: int, replica_id: int, index: int) -> int:
        return self.inner.term(shard_id, replica_id, index)

    def save_snapshot(self, shard_id: int, replica_id: int, snapshot: pb.Snapshot) -> None:
        self.inner.save_snapshot(shard_id, replica_id, snapshot)
        self._checker.local_snapshot(shard_id, replica_id, snapshot.index)

    def remove_entries_to(self, shard_id: int, replica_id: int, index: int) -> None:
        self.inner.remove_entries_to(shard_id, replica_id, index)
        self._checker.compacted(shard_id, replica_id, index)

    def save_bootstrap(self, shard_id: int, replica_id: int, bootstrap: pb.Bootstrap) -> None:
        self.inner.save_bootstrap(shard_id, replica_id, bootstrap)

    def get_bootstrap(self, shard_id: int, replica_id: int) -> pb.Bootstrap | None:
        return self.inner.get_bootstrap(shard_id, replica_id)

    def list_node_info(self) -> list[tuple[int, int]]:
        return self.inner.list_node_info()

    def remove_node_data(self, shard_id: int, replica_id: int) -> None:
        self.inner.remove_node_data(shard_id, replica_id)
        self._checker.removed(shard_id, replica_id)

    def close(self) -> None:
        self.inner.close()
