"""The simulated network: in-memory transports between simulated processes, with faults.

Each NodeHost gets a `SimulatedTransport`: the in-memory transport (the very frames and
checks of the gRPC one), plus what the network does to messages on their way:

- cuts, one-way or both ways, by address (a FaultHook on every transport, so snapshot
  streams and batches both stop, enforced by sender and receiver);
- per message, drawn from the network's seeded generator: loss, duplication (never of a
  forwarded proposal: the transport promises at most once, and a no-op session by
  contract does not deduplicate), and delay, which reorders;
- steering rules for scripted faults, as the chaos suite's: REPLICATE messages of a
  shard lose their entries above a term (`max_term`), or REPLICATE and HEARTBEAT tell
  at most a commit index (`max_commit`), between given replicas.

Rules:
- Messages are copied before they are changed or held back: the core may still hold
  the originals.
- Every random choice comes from one generator per run, drawn in the order messages are
  sent, so a run replays.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

from protos import raft_pb2 as pb
from transport import FaultHook, InMemoryNetwork, InMemoryTransport, TransportConfig
from transport.interface import TransportHandler


@dataclass(frozen=True, slots=True)
class MessageFaults:
    """Per-message faults, each a probability; `delay` is (low, high) seconds."""

    drop: float = 0.0
    duplicate: float = 0.0
    delay_rate: float = 0.0
    delay: tuple[float, float] = (0.0, 0.0)

    def any(self) -> bool:
        return bool(self.drop or self.duplicate or self.delay_rate)


@dataclass(frozen=True, slots=True)
class SteeringRule:
    """Rewrites REPLICATE/HEARTBEAT messages of `shard` from `from_id` to `to` (0: any)."""

    shard: int
    from_id: int = 0
    to: int = 0
    max_term: int | None = None  # entries of later terms are held back
    max_commit: int | None = None  # the commit index told is at most this


class SimulatedNetwork:
    """Where every simulated process's transport listens, and what happens on the way."""

    def __init__(self, rng: random.Random, latency: tuple[float, float] = (0.0002, 0.002)) -> None:
        self.rng = rng
        low, high = latency
        # Every batch takes a little time on the wire (in order per stream): a message
        # exchange never happens in no time, as none does between machines.
        self.memory = InMemoryNetwork(lambda src, dst: rng.uniform(low, high))
        self.faults = MessageFaults()
        self.rules: tuple[SteeringRule, ...] = ()
        self._hooks: dict[str, FaultHook] = {}
        self._cuts: frozenset[tuple[str, str]] = frozenset()
        self.delivered = 0
        self.dropped = 0
        self.duplicated = 0
        self.delayed = 0

    def transport(
        self, config: TransportConfig, handler: TransportHandler, rng: random.Random
    ) -> SimulatedTransport:
        """A transport for a new incarnation of the process at `config.raft_address`."""
        transport = SimulatedTransport(self, config, handler, rng=rng)
        hook = FaultHook()
        for src, dst in self._cuts:
            hook.cut(src, dst)
        transport.set_fault_hook(hook)
        self._hooks[config.raft_address] = hook
        return transport

    # ------------------------------------------------------------------ cuts

    def cut(self, src: str, dst: str) -> None:
        """Nothing from `src` reaches `dst` any more (one way)."""
        self._cuts = self._cuts | {(src, dst)}
        for hook in self._hooks.values():
            hook.cut(src, dst)

    def isolate(self, address: str, others: Iterable[str]) -> None:
        for other in others:
            if other != address:
                self.cut(address, other)
                self.cut(other, address)

    def partition(self, side: Iterable[str], rest: Iterable[str]) -> None:
        rest = list(rest)
        for a in side:
            for b in rest:
                self.cut(a, b)
                self.cut(b, a)

    def heal(self) -> None:
        self._cuts = frozenset()
        for hook in self._hooks.values():
            hook.heal()

    @property
    def cuts(self) -> frozenset[tuple[str, str]]:
        return self._cuts

    # ------------------------------------------------------------------ per message

    def route(self, messages: Iterable[pb.Message]) -> list[tuple[float, pb.Message]]:
        """(delay, message) for each copy of each message that goes out."""
        faults, rules = self.faults, self.rules
        if not faults.any() and not rules:
            out = [(0.0, m) for m in messages]
            self.delivered += len(out)
            return out
        rng = self.rng
        routed: list[tuple[float, pb.Message]] = []
        for m in messages:
            if rules:
                m = _steer(m, rules)
            if faults.drop and rng.random() < faults.drop:
                self.dropped += 1
                continue
            copies = 1
            if (
                faults.duplicate
                and m.type != pb.PROPOSE_FORWARD
                and rng.random() < faults.duplicate
            ):
                copies = 2
                self.duplicated += 1
            for _ in range(copies):
                delay = 0.0
                if faults.delay_rate and rng.random() < faults.delay_rate:
                    delay = rng.uniform(*faults.delay)
                    self.delayed += 1
                routed.append((delay, m))
        self.delivered += len(routed)
        return routed


class SimulatedTransport(InMemoryTransport):
    """The in-memory transport with the simulated network's faults on the sending side."""

    def __init__(
        self,
        network: SimulatedNetwork,
        config: TransportConfig,
        handler: TransportHandler,
        *,
        rng: random.Random,
    ) -> None:
        super().__init__(network.memory, config, handler, rng=rng)
        self._simulated = network

    def send(self, messages: Iterable[pb.Message]) -> None:
        now: list[pb.Message] = []
        later: list[tuple[float, pb.Message]] = []
        for delay, m in self._simulated.route(messages):
            if delay > 0:
                later.append((delay, m))
            else:
                now.append(m)
        if now:
            super().send(now)
        if later and self._loop is not None and not self._closed:
            for delay, m in later:
                copy = pb.Message()
                copy.CopyFrom(m)
                self._loop.call_later(delay, self._send_late, copy)

    def _send_late(self, message: pb.Message) -> None:
        if not self._closed:
            super().send([message])


def _steer(m: pb.Message, rules: tuple[SteeringRule, ...]) -> pb.Message:
    if m.type != pb.REPLICATE and m.type != pb.HEARTBEAT:
        return m
    for rule in rules:
        if (
            rule.shard != m.shard_id
            or rule.to not in (0, m.to)
            or rule.from_id not in (0, m.from_id)
        ):
            continue
        if rule.max_term is not None and any(e.term > rule.max_term for e in m.entries):
            copy = pb.Message()
            copy.CopyFrom(m)
            del copy.entries[:]
            copy.entries.extend(e for e in m.entries if e.term <= rule.max_term)
            m = copy
        if rule.max_commit is not None and m.commit > rule.max_commit:
            copy = pb.Message()
            copy.CopyFrom(m)
            copy.commit = rule.max_commit
            m = copy
    return m
