"""A seeded, in-process network of Raft replicas, with Raft's safety checks built in.

Rules:
- Deterministic: one `random.Random(seed)` decides every delay, drop, duplicate and
  reordering; replicas get their own seeded generators.
- Each replica's Update is acted on exactly in the documented order: send
  `replicate`, save to the replica's MemoryLogReader (fsync when asked), send
  `messages`, `commit_update`, then recover/apply. `process(id, split=True)` stops
  after the first step, so a crash can hit between "sent" and "saved": the crash then
  loses the Update and every unsynced write, as a real process would.
- A crashed replica's in-flight messages are lost; a restarted one is rebuilt from
  its MemoryLogReader only, its state machine from the saved snapshot plus the log.
- After every step the checker asserts election safety, log matching, leader
  completeness, state machine safety, that no proposal is applied twice, and that
  every read is served at or after every commit that happened before it was asked.
- Forwarded proposals are never duplicated: a duplicated PROPOSE_FORWARD is a
  duplicated client command, which only client sessions (thesis 6.3, the state
  machine layer) can absorb. Every other message may be duplicated.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from nodehost.raft import (
    MemoryLogReader,
    Peer,
    Raft,
    RaftConfig,
    ReadContext,
    Refusal,
    Role,
    Update,
    describe_message,
)
from nodehost.raft import membership as members
from nodehost.testing.hostile import Context
from protos import raft_pb2 as pb

Mutated = tuple[pb.Message, str]


class SafetyViolation(AssertionError):
    """One of Raft's guarantees was broken."""


def address(replica_id: int) -> str:
    return f"host{replica_id}:1"


@dataclass
class StateMachine:
    """What the state machine layer would hold: applied commands and membership."""

    applied: int = 0
    applied_term: int = 0
    keys: dict[int, int] = field(default_factory=dict)  # proposal key -> log index
    membership: pb.Membership = field(default_factory=pb.Membership)

    def copy(self) -> StateMachine:
        m = pb.Membership()
        m.CopyFrom(self.membership)
        return StateMachine(self.applied, self.applied_term, dict(self.keys), m)


@dataclass
class Node:
    replica_id: int
    config: RaftConfig
    log: MemoryLogReader
    join: bool
    initial: dict[int, str] | None = None
    peer: Peer | None = None
    sm: StateMachine = field(default_factory=StateMachine)
    pending: Update | None = None  # replicate sent, not yet saved
    proposals: set[int] = field(default_factory=set)  # keys proposed here, unanswered
    reads: dict[tuple[int, int], int] = field(default_factory=dict)  # ctx -> floor
    ready_reads: list[tuple[tuple[int, int], int, int]] = field(default_factory=list)
    restarts: int = 0
    # A slow state machine: entries are applied but the core is not told (applied_to).
    hold_applied: bool = False
    checked_commit: int = 0
    led_term: int = 0  # the last term the checker saw this replica lead

    @property
    def alive(self) -> bool:
        return self.peer is not None


class Network:
    def __init__(
        self,
        voters: Iterable[int],
        *,
        seed: int = 0,
        trace: bool = False,
        protocol: type[Raft] = Raft,
        **config: object,
    ) -> None:
        self.seed = seed
        self.protocol = protocol  # the core's rules: a test may hand in a broken subclass
        self.rng = random.Random(seed)
        self.config = {"election_rtt": 10, "heartbeat_rtt": 1, **config}
        self.nodes: dict[int, Node] = {}
        self.queue: list[tuple[int, int, pb.Message]] = []
        self.seq = 0
        self.now = 0
        self.cut: set[tuple[int, int]] = set()
        self.drop_rate = 0.0
        self.duplicate_rate = 0.0
        self.max_delay = 0
        self.trace: list[str] | None = [] if trace else None
        # Drop every message for which one of these returns True (etcd's msgHook).
        self.filters: list[Callable[[pb.Message], bool]] = []
        self.checker = Checker(self)
        self.snapshots: dict[tuple[int, int], StateMachine] = {}
        self.next_key = 1
        self.next_read = 1
        self.acked: dict[int, int] = {}  # key -> index, answered to the client
        self.refused = 0  # messages admission dropped because it did not know the sender
        # Hostile copies: with `hostile_rate`, each message sent may be followed by a
        # copy changed by `mutate` (nodehost.testing.hostile), delivered like any other.
        self.hostile_rate = 0.0
        self.mutate: Callable[[pb.Message, random.Random, Context], Mutated | None] | None = None
        self.hostile: dict[int, str] = {}  # id of a queued hostile message -> operator
        self.hostile_refused: Counter[str] = Counter()
        self.hostile_admitted: Counter[str] = Counter()
        initial = {rid: address(rid) for rid in voters}
        for rid in initial:
            self._create(rid, join=False, initial=initial)

    @classmethod
    def of(cls, n: int, seed: int = 0, **config: object) -> Network:
        return cls(range(1, n + 1), seed=seed, **config)

    # ------------------------------------------------------------------ replicas

    def _create(
        self, rid: int, join: bool, initial: dict[int, str] | None = None, **extra: object
    ) -> Node:
        cfg = RaftConfig(shard_id=1, replica_id=rid, **{**self.config, **extra})  # type: ignore[arg-type]
        node = Node(rid, cfg, MemoryLogReader(), join, initial)
        self.nodes[rid] = node
        node.peer = Peer(
            cfg,
            node.log,
            random.Random(self.seed * 1000 + rid),
            initial,
            join,
            protocol=self.protocol,
        )
        return node

    def add_node(self, rid: int, **extra: object) -> Node:
        """A new, empty replica that joins once the leader adds it."""
        return self._create(rid, join=True, **extra)

    def peer(self, rid: int) -> Peer:
        peer = self.nodes[rid].peer
        assert peer is not None, f"replica {rid} is down"
        return peer

    def alive(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.peer is not None]

    def crash(self, rid: int) -> None:
        node = self.nodes[rid]
        node.peer = None
        node.pending = None
        node.log.drop_unsynced()
        node.proposals.clear()
        node.reads.clear()
        node.ready_reads.clear()
        self._event(f"crash {rid}")

    def restart(self, rid: int) -> None:
        node = self.nodes[rid]
        assert node.peer is None
        node.restarts += 1
        node.sm = self._recover(node.log.snapshot(), node)
        node.checked_commit = node.sm.applied
        node.peer = Peer(
            node.config,
            node.log,
            random.Random(self.seed * 1000 + rid + 100 * node.restarts),
            node.initial,
            node.join,
            protocol=self.protocol,
        )
        self._event(f"restart {rid}")
        self.checker.check()

    def _recover(self, ss: pb.Snapshot, node: Node) -> StateMachine:
        if ss.index == 0:
            return StateMachine()
        if ss.witness or node.config.is_witness:
            sm = StateMachine(ss.index, ss.term)
        else:
            sm = self.snapshots[(ss.index, ss.term)].copy()
        sm.membership.CopyFrom(ss.membership)
        return sm

    # ------------------------------------------------------------------ faults

    def isolate(self, rid: int) -> None:
        for other in self.nodes:
            if other != rid:
                self.cut.add((rid, other))
                self.cut.add((other, rid))

    def partition(self, *groups: Iterable[int]) -> None:
        sets = [set(g) for g in groups]
        for a in self.nodes:
            for b in self.nodes:
                if a != b and not any(a in s and b in s for s in sets):
                    self.cut.add((a, b))

    def cut_link(self, a: int, b: int) -> None:
        self.cut.add((a, b))
        self.cut.add((b, a))

    def heal(self) -> None:
        self.cut.clear()

    # ------------------------------------------------------------------ messages

    def _event(self, text: str) -> None:
        if self.trace is not None:
            self.trace.append(text)

    def send(self, messages: list[pb.Message]) -> None:
        for m in messages:
            if (
                (m.from_id, m.to) in self.cut
                or m.to not in self.nodes
                or any(f(m) for f in self.filters)
                or (self.drop_rate and self.rng.random() < self.drop_rate)
            ):
                self._event(describe_message(m) + " (lost)")
                self._lost(m)
                continue
            self._event(describe_message(m))
            copies = 1
            if (
                self.duplicate_rate
                and m.type != pb.PROPOSE_FORWARD
                and self.rng.random() < self.duplicate_rate
            ):
                copies = 2
            for _ in range(copies):
                delay = self.rng.randint(0, self.max_delay) if self.max_delay else 0
                self.seq += 1
                heapq.heappush(self.queue, (self.now + delay, self.seq, m))
        if self.hostile_rate and self.mutate is not None:
            for m in messages:
                if self.rng.random() < self.hostile_rate:
                    self._inject(m)

    def _inject(self, m: pb.Message) -> None:
        assert self.mutate is not None
        # Every replica's term, the saved one of those down: a term "out of range" must
        # be out of range for each of them.
        terms = [
            n.peer.term if n.peer is not None else n.log.state().term for n in self.nodes.values()
        ]
        mutated = self.mutate(m, self.rng, Context(max_term=max(terms, default=1)))
        if mutated is None:
            return
        bad, operator = mutated
        self.hostile[id(bad)] = operator
        self._event(describe_message(bad) + f" (hostile: {operator})")
        delay = self.rng.randint(0, self.max_delay) if self.max_delay else 0
        self.seq += 1
        heapq.heappush(self.queue, (self.now + delay, self.seq, bad))

    def deliver(self, m: pb.Message) -> None:
        operator = self.hostile.pop(id(m), None)
        if operator is not None:
            self._deliver_hostile(m, operator)
            return
        node = self.nodes.get(m.to)
        if node is None or node.peer is None or (m.from_id, m.to) in self.cut:
            self._lost(m)
            return
        # Every message passes admission first, as in a NodeHost. Honest traffic is
        # never refused for its form: such a refusal is a bug in admission or in the
        # core. It may come from a replica this one does not know (one added and
        # removed while this one was away): that one is dropped like a lost message,
        # and the schedules show Raft lives with it.
        refusal = node.peer.check(m)
        if refusal is Refusal.NOT_A_MEMBER:
            self.refused += 1
            self._event(describe_message(m) + " (refused: not a member)")
            self._lost(m)
            return
        if refusal is not None:
            if self.mutate is None:
                raise SafetyViolation(f"admission refused an honest message ({refusal}): {m}")
            # An answer to a hostile message may be refused in turn (a rejection of a
            # prev index the leader never sent): counted with the hostile ones.
            self.hostile_refused[f"answer {refusal.value}"] += 1
            self._lost(m)
            return
        node.peer.step(m)
        if m.type == pb.INSTALL_SNAPSHOT:
            self._snapshot_status(m, failed=False)
        self.checker.check()

    def _deliver_hostile(self, m: pb.Message, operator: str) -> None:
        """As a NodeHost would: admission first; what passes is stepped, and Raft's
        safety is checked as after any other delivery."""
        node = self.nodes.get(m.to)
        if node is None or node.peer is None or m.shard_id != 1:
            return  # the transport has nowhere to deliver it
        refusal = node.peer.check(m)
        if refusal is not None:
            self.hostile_refused[refusal.value] += 1
            return
        self.hostile_admitted[operator] += 1
        node.peer.step(m)
        self.checker.check()

    def _lost(self, m: pb.Message) -> None:
        if m.type == pb.INSTALL_SNAPSHOT:
            self._snapshot_status(m, failed=True)

    def _snapshot_status(self, m: pb.Message, failed: bool) -> None:
        """The transport tells the sender how a snapshot stream ended."""
        sender = self.nodes.get(m.from_id)
        if sender is not None and sender.peer is not None:
            sender.peer.report_snapshot_status(m.to, failed)

    def deliver_matching(self, predicate: Callable[[pb.Message], bool]) -> int:
        """Deliver the queued messages matching predicate now; keep the others queued."""
        keep, chosen = [], []
        for item in sorted(self.queue):
            (chosen if predicate(item[2]) else keep).append(item)
        self.queue = keep
        heapq.heapify(self.queue)
        for _, _, m in chosen:
            self.deliver(m)
        return len(chosen)

    def deliver_due(self, shuffle: bool = False) -> int:
        """Deliver every message due now; in random order when shuffle is set."""
        due: list[pb.Message] = []
        while self.queue and self.queue[0][0] <= self.now:
            due.append(heapq.heappop(self.queue)[2])
        if shuffle:
            self.rng.shuffle(due)
        for m in due:
            self.deliver(m)
        return len(due)

    # ------------------------------------------------------------------ updates

    def process(self, rid: int, split: bool = False) -> bool:
        """Act on one Update of replica rid; with split, stop after sending `replicate`."""
        node = self.nodes[rid]
        peer = node.peer
        if peer is None:
            return False
        if node.pending is None:
            if not peer.has_update():
                return False
            u = peer.get_update()
            node.pending = u
            self.send(u.replicate)
            if split:
                return True
        u = node.pending
        node.pending = None
        self._save(node, u)
        self.send(u.messages)
        peer.commit_update(u)
        self._apply(node, u)
        self.checker.check()
        return True

    def _save(self, node: Node, u: Update) -> None:
        log = node.log
        if u.snapshot is not None:
            log.apply_snapshot(u.snapshot)
        if u.entries:
            log.append(u.entries)
            self.checker.saved(node, u.entries)
        if u.state is not None:
            log.set_state(u.state)
        if u.must_sync:
            log.sync()

    def _apply(self, node: Node, u: Update) -> None:
        peer = node.peer
        assert peer is not None
        if u.snapshot is not None:
            node.sm = self._recover(u.snapshot, node)
        for e in u.committed:
            self._apply_entry(node, e)
        if not node.hold_applied:
            peer.applied_to(node.sm.applied)
        for key in (e.key for e in u.dropped_entries):
            node.proposals.discard(key)
        for ctx in u.dropped_reads:
            node.reads.pop((ctx.low, ctx.high), None)
        for ready in u.ready_to_reads:
            key = (ready.context.low, ready.context.high)
            floor = node.reads.pop(key, None)
            if floor is not None:
                node.ready_reads.append((key, ready.index, floor))
        self._serve_reads(node)

    def _apply_entry(self, node: Node, e: pb.Entry) -> None:
        sm = node.sm
        if e.index != sm.applied + 1:
            raise SafetyViolation(
                f"replica {node.replica_id} applies {e.index} after {sm.applied}: out of order"
            )
        self.checker.applied(node, e)
        sm.applied = e.index
        sm.applied_term = e.term
        if e.type == pb.CONFIG_CHANGE:
            cc = pb.ConfigChange.FromString(e.cmd)
            if members.check(sm.membership, cc, node.config.ordered_config_change) is None:
                members.apply(sm.membership, cc, e.index)
        elif e.type == pb.APPLICATION and e.key:
            first = sm.keys.setdefault(e.key, e.index)
            if first != e.index:
                raise SafetyViolation(
                    f"replica {node.replica_id} applied proposal {e.key} twice, "
                    f"at {first} and {e.index}"
                )
            if e.key in node.proposals:
                node.proposals.discard(e.key)
                self.acked[e.key] = e.index

    def _serve_reads(self, node: Node) -> None:
        """A read is served once applied reaches its index (thesis 6.4)."""
        still = []
        for key, index, floor in node.ready_reads:
            if node.sm.applied < index:
                still.append((key, index, floor))
                continue
            if index < floor:
                raise SafetyViolation(
                    f"stale read on replica {node.replica_id}: served at index {index}, but "
                    f"index {floor} was committed before the read was asked"
                )
            self.checker.reads_served += 1
        node.ready_reads = still

    def take_snapshot(self, rid: int, overhead: int = 0) -> int:
        """The state machine layer snapshots at its applied index and compacts."""
        node = self.nodes[rid]
        sm = node.sm
        if sm.applied <= node.log.snapshot().index:
            return 0
        ss = pb.Snapshot(
            shard_id=1,
            index=sm.applied,
            term=sm.applied_term,
            membership=sm.membership,
            witness=node.config.is_witness,
        )
        if not node.config.is_witness:
            self.snapshots[(ss.index, ss.term)] = sm.copy()
        node.log.create_snapshot(ss)
        node.log.compact(max(ss.index - overhead, 0))
        return ss.index

    # ------------------------------------------------------------------ driving

    def tick(self, rid: int | None = None, ticks: int = 1) -> None:
        """Tick one replica (or all) and let the network settle after each tick."""
        for _ in range(ticks):
            self.now += 1
            for node in [self.nodes[rid]] if rid is not None else list(self.nodes.values()):
                if node.peer is not None:
                    node.peer.tick()
            self.stabilize()

    def stabilize(self, max_rounds: int = 10_000) -> None:
        """Process every Update and deliver every due message until nothing moves."""
        for _ in range(max_rounds):
            busy = False
            for rid in list(self.nodes):
                while self.process(rid):
                    busy = True
            if self.deliver_due():
                busy = True
            if not busy:
                return
        raise AssertionError("network did not settle")

    def step(self, rid: int, m: pb.Message) -> None:
        self.peer(rid).step(m)
        self.checker.check()

    def elect(self, rid: int) -> None:
        self.step(rid, pb.Message(type=pb.ELECTION))
        self.stabilize()
        assert self.peer(rid).role is Role.LEADER, f"{rid} did not win: {self.roles()}"

    def leader(self) -> int:
        """The leader of the highest term among live replicas, or 0."""
        best = (0, 0)
        for node in self.alive():
            assert node.peer is not None
            if node.peer.role is Role.LEADER and node.peer.term > best[0]:
                best = (node.peer.term, node.replica_id)
        return best[1]

    def roles(self) -> dict[int, str]:
        return {
            n.replica_id: f"{n.peer.role.name}@{n.peer.term}" if n.peer else "down"
            for n in self.nodes.values()
        }

    def propose(self, rid: int, cmd: bytes = b"x") -> int:
        key = self.next_key
        self.next_key += 1
        node = self.nodes[rid]
        node.proposals.add(key)
        self.peer(rid).propose([pb.Entry(key=key, cmd=cmd)])
        return key

    def propose_config_change(
        self, rid: int, cc_type: pb.ConfigChangeType, target: int, cc_id: int = 0
    ) -> None:
        cc = pb.ConfigChange(
            type=cc_type, replica_id=target, address=address(target), config_change_id=cc_id
        )
        self.peer(rid).propose_config_change(cc, key=0)

    def read(self, rid: int) -> tuple[int, int]:
        ctx = ReadContext(self.next_read, rid)
        self.next_read += 1
        self.nodes[rid].reads[(ctx.low, ctx.high)] = self.checker.max_commit
        self.peer(rid).read_index(ctx)
        return (ctx.low, ctx.high)

    def read_served(self, rid: int, ctx: tuple[int, int]) -> bool:
        node = self.nodes[rid]
        return ctx not in node.reads and all(key != ctx for key, _, _ in node.ready_reads)

    def applied(self, rid: int) -> int:
        return self.nodes[rid].sm.applied


class Checker:
    """Raft's safety properties (thesis figure 3.2), checked incrementally."""

    def __init__(self, net: Network) -> None:
        self.net = net
        self.leaders: dict[int, int] = {}  # term -> leader
        self.committed: dict[int, int] = {}  # index -> term, as any replica committed it
        # index -> the term in which it was first seen committed: later leaders have it.
        self.committed_in: dict[int, int] = {}
        self.max_commit = 0
        self.entries: dict[tuple[int, int], tuple[int, int, int, bytes] | None] = {}
        self.prev_terms: dict[tuple[int, int], int] = {}
        self.applied_entries: dict[int, tuple[int, int, int, bytes]] = {}
        self.reads_served = 0

    def check(self) -> None:
        for node in self.net.nodes.values():
            peer = node.peer
            if peer is None:
                continue
            raft = peer.raft
            if raft.role is Role.LEADER:
                term = raft.term
                known = self.leaders.setdefault(term, node.replica_id)
                if known != node.replica_id:
                    raise SafetyViolation(
                        f"two leaders in term {term}: {known} and {node.replica_id}"
                    )
                if node.led_term != term:
                    node.led_term = term
                    self._complete(node, term)
            self._record_commits(node)

    def _record_commits(self, node: Node) -> None:
        peer = node.peer
        assert peer is not None
        log = peer.raft.log
        committed = log.committed
        if committed <= node.checked_commit:
            return
        first = log.first_index()
        for index in range(max(node.checked_commit + 1, first - 1), committed + 1):
            try:
                term = log.term(index)
            except Exception:
                continue
            known = self.committed.setdefault(index, term)
            if known != term:
                raise SafetyViolation(
                    f"replica {node.replica_id} committed {term}/{index}, "
                    f"but {known}/{index} was committed before"
                )
            self.committed_in.setdefault(index, peer.term)
            if index > self.max_commit:
                self.max_commit = index
            for other in self.net.nodes.values():
                peer_ = other.peer
                if (
                    peer_ is not None
                    and peer_.role is Role.LEADER
                    and peer_.term > self.committed_in[index]
                ):
                    self._has(other, index, term)
        node.checked_commit = committed

    def _complete(self, node: Node, term: int) -> None:
        """Leader completeness: a new leader holds every entry committed before."""
        for index, t in self.committed.items():
            if self.committed_in[index] < term:
                self._has(node, index, t)

    def _has(self, node: Node, index: int, term: int) -> None:
        assert node.peer is not None
        log = node.peer.raft.log
        if index < log.first_index():
            return
        try:
            found = log.term(index)
        except Exception:
            found = -1
        if found != term:
            raise SafetyViolation(
                f"leader {node.replica_id} of term {node.peer.term} lacks committed entry "
                f"{term}/{index} (has term {found})"
            )

    def saved(self, node: Node, entries: list[pb.Entry]) -> None:
        """Log matching: an (index, term) pair names one entry and one log prefix."""
        log = node.log
        for e in entries:
            key = (e.index, e.term)
            try:
                prev = log.term(e.index - 1)
            except Exception:
                prev = -1
            if prev >= 0:
                known = self.prev_terms.setdefault(key, prev)
                if known != prev:
                    raise SafetyViolation(
                        f"log matching: {e.term}/{e.index} follows term {prev} on replica "
                        f"{node.replica_id} but term {known} elsewhere"
                    )
            if e.type != pb.METADATA:
                content = (e.type, e.key, e.client_id, e.cmd)
                seen = self.entries.setdefault(key, content)
                if seen != content:
                    raise SafetyViolation(
                        f"two different entries at {e.term}/{e.index}: {seen} and {content}"
                    )

    def applied(self, node: Node, e: pb.Entry) -> None:
        """State machine safety: every replica applies the same entry at an index."""
        if e.type == pb.METADATA:
            content = None
        else:
            content = (e.term, e.type, e.key, e.cmd)
        known = self.applied_entries.get(e.index)
        if known is None:
            if content is not None:
                self.applied_entries[e.index] = content
            term = self.committed.setdefault(e.index, e.term)
            self.committed_in.setdefault(e.index, e.term)
        else:
            term = known[0]
            if content is not None and content != known:
                raise SafetyViolation(
                    f"replica {node.replica_id} applied {content} at {e.index}, "
                    f"another replica applied {known}"
                )
        if term != e.term:
            raise SafetyViolation(
                f"replica {node.replica_id} applied {e.term}/{e.index}, "
                f"but {term}/{e.index} was committed"
            )
