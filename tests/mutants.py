"""Five known bugs, each a broken part handed to a NodeHost the way any part is
(nodehost.parts), so that the simulation and the chaos suite can prove they catch it.

Nothing in nodehost/ knows about these: each is a subclass of the real part with one
rule taken out, or a wrapper around the log store, and a test builds its NodeHosts with
`Mutant.replica_parts` and `Mutant.wrap_logdb` (tests/testing/test_simulation_mutants.py,
tests/chaos/worker.py). Each models a real bug faithfully enough for its fault to show it:

- commit-earlier-term-by-count: a leader commits an entry of an earlier term because a
  majority holds it (the Raft thesis's figure 3.7): a later leader can overwrite it.
- read-index-before-first-commit: a new leader serves ReadIndex before an entry of its
  own term committed, at a commit index that may lag what clients were told (etcd #7331).
- follower-read-without-read-index: a follower serves a read at its own commit index
  without asking the leader: stale as soon as the leader committed more.
- ack-before-fsync: the log store acknowledges writes and writes them a second later,
  as a lazy fsync does (NATS 2.12.1 synced every 2 minutes): a crash of the machine
  loses acknowledged votes and entries.
- session-apply-twice: a command its client session retried after a timeout reaches the
  state machine again, though it was applied: exactly-once is lost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from logdb import ILogDB, RaftState, SaveRecord
from nodehost.parts import Clock, ReplicaParts
from nodehost.raft import Raft, ReadContext, ReadyToRead, Role
from nodehost.raft.quorum import committed_index
from nodehost.raft.readindex import PendingRead
from nodehost.rsm import StateMachineManager
from protos import raft_pb2 as pb
from statemachine import Result


class CommitEarlierTermByCount(Raft):
    """`_try_commit` without "only entries of the leader's own term are counted"."""

    def _try_commit(self) -> None:
        log = self.log
        while self.role is Role.LEADER:
            rid = self.replica_id
            progress = self.progress
            index = committed_index(
                [self.self_match if v == rid else progress[v].match for v in self.voters]
            )
            if index <= log.committed:
                return
            self._commit_to(index)  # the bug: log.term(index) may be an earlier term


class ReadIndexBeforeFirstCommit(Raft):
    """`_leader_read` without "no read before an entry of this term committed"."""

    def _leader_read(self, ctx: ReadContext, from_id: int) -> None:
        read = PendingRead(ctx, self.log.committed, from_id, self.tick_count)
        if self.removed:
            self._reject_read(read)
            return
        if self.voters == {self.replica_id}:
            self._release_read(read)
            return
        self.reads.add(ctx, read.index, from_id, self.tick_count)
        self.need_flush = True


class FollowerReadWithoutReadIndex(Raft):
    """A follower answers a read at its own commit index instead of asking its leader."""

    def read_index(self, ctx: ReadContext) -> None:
        if (
            not self.removed
            and self.role is not Role.LEADER
            and self.leader_id
            and self.role is not Role.CANDIDATE
            and self.role is not Role.PRE_CANDIDATE
        ):
            self.ready_reads.append(ReadyToRead(ctx, self.log.committed))
            return
        super().read_index(ctx)


class SessionApplyTwice(StateMachineManager):
    """A retried command of a session reaches the user's state machine again."""

    def _answer_retry(self, run: Any, e: pb.Entry, cached: Result) -> None:
        self._user_entry(run, e, None)


class LazySaves:
    """The log store acknowledges every write at once and writes what it holds every
    `interval` seconds: votes, acknowledgements and applies go ahead as if saved, and a
    crash of the machine loses up to `interval` of them, as a power cut does with a lazy
    fsync. (A process kill alone keeps the page cache, so the chaos suite, which kills
    processes, holds the writes in the process.) Held writes go out in their order, so
    what reaches the disk is always a prefix of what was acknowledged."""

    def __init__(self, inner: ILogDB, clock: Clock, interval: float = 1.0) -> None:
        self.inner = inner
        self._clock = clock
        self._interval = interval
        self._held: list[SaveRecord] = []
        self._since = 0.0

    def save(self, updates: Sequence[SaveRecord]) -> None:
        now = self._clock.monotonic()
        if not self._held:
            self._since = now
        self._held.extend(updates)
        if now - self._since >= self._interval:
            held, self._held = self._held, []
            self.inner.save(held)

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

    def remove_entries_to(self, shard_id: int, replica_id: int, index: int) -> None:
        self.inner.remove_entries_to(shard_id, replica_id, index)

    def save_bootstrap(self, shard_id: int, replica_id: int, bootstrap: pb.Bootstrap) -> None:
        self.inner.save_bootstrap(shard_id, replica_id, bootstrap)

    def get_bootstrap(self, shard_id: int, replica_id: int) -> pb.Bootstrap | None:
        return self.inner.get_bootstrap(shard_id, replica_id)

    def list_node_info(self) -> list[tuple[int, int]]:
        return self.inner.list_node_info()

    def remove_node_data(self, shard_id: int, replica_id: int) -> None:
        self.inner.remove_node_data(shard_id, replica_id)

    def close(self) -> None:
        self.inner.close()


@dataclass(frozen=True)
class Mutant:
    name: str
    why: str
    replica_parts: ReplicaParts | None = None
    wrap_logdb: Callable[[ILogDB, Clock], ILogDB] | None = None

    def host_parts(self) -> dict[str, Any]:
        """The NodeHost keywords that build a host with this bug."""
        return {} if self.replica_parts is None else {"replica_parts": self.replica_parts}


MUTANTS: dict[str, Mutant] = {
    m.name: m
    for m in (
        Mutant(
            "commit-earlier-term-by-count",
            "a leader commits an earlier term's entry by counting replicas (figure 8)",
            ReplicaParts(raft=CommitEarlierTermByCount),
        ),
        Mutant(
            "read-index-before-first-commit",
            "a new leader serves reads before an entry of its term committed",
            ReplicaParts(raft=ReadIndexBeforeFirstCommit),
        ),
        Mutant(
            "follower-read-without-read-index",
            "a follower serves reads at its own commit index",
            ReplicaParts(raft=FollowerReadWithoutReadIndex),
        ),
        Mutant(
            "ack-before-fsync",
            "the log store acknowledges writes before they are durable",
            wrap_logdb=LazySaves,
        ),
        Mutant(
            "session-apply-twice",
            "a session's retried command is applied again",
            ReplicaParts(state_machine_manager=SessionApplyTwice),
        ),
    )
}
