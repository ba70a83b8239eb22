"""The faults of a simulated run: which, when, and how each is injected and healed.

`plan(seed, ...)` draws a run's faults from its seed: a few, each after a quiet gap,
each of a kind drawn among the kinds enabled. `Nemesis` injects them as a coroutine on
its own loop, reading the cluster only through the public NodeHost API.

Kinds:
- crash: one process dies (SIGKILL, or a power cut that loses unsynced writes) and
  restarts after a while; crash-majority: a majority of processes at once.
- partition: one host cut off both ways; one-way: what one host sends to another is
  lost, while the other way works.
- flaky: the whole network loses, duplicates, delays and so reorders messages.
- disk-full: one host's next log write fails as on a full disk; the host stops (a
  failed log write stops a NodeHost) and is restarted with room.
- snapshot: a replica saves a snapshot on request, and a host cut off long enough to
  fall behind its leader's compacted log is brought back by a snapshot install.
- membership: a replica is added on a new host, which joins, then another is removed.
- transfer: leadership moves to another replica on request.
- figure-8 and lagging-leader: the scripted schedules of the chaos suite
  (tests/chaos/nemesis.py), steered by message rules (network.py): the Raft thesis
  figure 3.7, and a new leader whose commit index lags what clients were told.

Rules:
- Everything is drawn from the seed in `plan`, or from the nemesis's own generator in
  the order faults happen: a run replays.
- A fault that cannot be injected (no leader to start from) says why; the run counts
  what was attempted and what was injected.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

from nodehost import NodeHostInfoOption, RaftError, RequestResult, RequestState
from nodehost.testing.simulation.config import SimulationConfig
from nodehost.testing.simulation.hosts import SimulatedHost
from nodehost.testing.simulation.loop import Scheduler
from nodehost.testing.simulation.network import MessageFaults, SimulatedNetwork, SteeringRule


class World(Protocol):
    """What the nemesis needs of the run it hits (simulation.Simulation)."""

    @property
    def shard_id(self) -> int: ...
    @property
    def config(self) -> SimulationConfig: ...
    @property
    def scheduler(self) -> Scheduler: ...
    @property
    def network(self) -> SimulatedNetwork: ...
    @property
    def hosts(self) -> list[SimulatedHost]: ...
    @property
    def rng(self) -> random.Random: ...
    @property
    def events(self) -> Counter[str]: ...

    def trace(self, text: str) -> None: ...
    def voting_hosts(self) -> list[SimulatedHost]: ...
    def spare_host(self) -> SimulatedHost: ...
    def next_replica_id(self) -> int: ...
    def retire(self, host: SimulatedHost) -> None: ...
    def join_host(self, host: SimulatedHost, shard_id: int, replica_id: int) -> None: ...


@dataclass(frozen=True, slots=True)
class Fault:
    at: float  # seconds after the run's faults begin
    kind: str
    duration: float
    host: int  # a host index for faults on one host
    other: int  # a second, different host


def plan(
    seed: int, kinds: dict[str, float], hosts: int, window: float, count: tuple[int, int]
) -> list[Fault]:
    """The faults of one run: `count` (low, high) of them within `window` seconds."""
    rng = random.Random(f"nemesis-plan/{seed}")
    names = sorted(kinds)
    weights = [kinds[k] for k in names]
    faults: list[Fault] = []
    t = rng.uniform(0.0, window / 4)
    for _ in range(rng.randint(*count)):
        kind = rng.choices(names, weights)[0]
        duration = _duration(kind, rng, window)
        host = rng.randrange(hosts)
        other = (host + 1 + rng.randrange(hosts - 1)) % hosts
        faults.append(Fault(round(t, 6), kind, duration, host, other))
        t += duration + rng.uniform(0.0, window / 4)
    return faults


def _duration(kind: str, rng: random.Random, window: float) -> float:
    if kind in ("figure-8", "lagging-leader"):
        return 0.0  # scripted: takes the time it needs
    return round(rng.uniform(window / 6, window / 2), 6)


@dataclass
class Nemesis:
    sim: World
    faults: list[Fault]
    attempted: Counter[str] = field(default_factory=Counter)
    injected: Counter[str] = field(default_factory=Counter)
    skipped: list[str] = field(default_factory=list)

    async def run(self) -> None:
        sim = self.sim
        started = sim.scheduler.now
        for fault in self.faults:
            wait = started + fault.at - sim.scheduler.now
            if wait > 0:
                await asyncio.sleep(wait)
            self.attempted[fault.kind] += 1
            sim.trace(f"fault {fault}")
            why = await getattr(self, "_" + fault.kind.replace("-", "_"))(fault)
            if why is None:
                self.injected[fault.kind] += 1
            else:
                self.skipped.append(f"{fault.kind}: {why}")
                sim.trace(f"fault {fault.kind} not injected: {why}")

    # ------------------------------------------------------------------ helpers

    @property
    def _rtt(self) -> float:
        return self.sim.config.rtt_ms / 1000.0

    def _live(self) -> list[SimulatedHost]:
        return [h for h in self.sim.hosts if h.up and h.plans]

    def _host(self, index: int) -> SimulatedHost:
        hosts = self.sim.voting_hosts()
        return hosts[index % len(hosts)]

    def _leader(self, shard_id: int) -> tuple[SimulatedHost, int, int] | None:
        """(host, replica id, term) of the leader all live hosts that know one agree on."""
        found: set[tuple[int, int]] = set()
        for host in self._live():
            assert host.nh is not None
            try:
                leader, term, valid = host.nh.get_leader_id(shard_id)
            except RaftError:
                continue
            if valid:
                found.add((leader, term))
        if len(found) != 1:
            return None
        leader, term = found.pop()
        for host in self.sim.hosts:
            plan = host.plans.get(shard_id)
            if host.up and plan is not None and plan.replica_id == leader:
                return host, leader, term
        return None

    async def _wait_leader(
        self, shard_id: int, among: set[int] | None, above: int, timeout: float
    ) -> tuple[SimulatedHost, int, int] | None:
        end = self.sim.scheduler.now + timeout
        while self.sim.scheduler.now < end:
            found = self._leader(shard_id)
            if found is not None and found[2] > above and (among is None or found[1] in among):
                return found
            await asyncio.sleep(self._rtt)
        return None

    def _addresses(self) -> list[str]:
        return [h.address for h in self.sim.hosts]

    # ------------------------------------------------------------------ kinds

    async def _crash(self, fault: Fault) -> str | None:
        host = self._host(fault.host)
        if not host.up:
            return f"{host} is down already"
        power = self.sim.rng.random() < 0.5
        host.crash(power_cut=power)
        await asyncio.sleep(fault.duration)
        host.restart()
        return None

    async def _crash_majority(self, fault: Fault) -> str | None:
        hosts = [h for h in self.sim.voting_hosts() if h.up]
        chosen = hosts[: len(self.sim.voting_hosts()) // 2 + 1]
        if len(chosen) <= len(self.sim.voting_hosts()) // 2:
            return "not enough hosts up"
        for host in chosen:
            host.crash(power_cut=True)
        await asyncio.sleep(fault.duration)
        for host in chosen:
            host.restart()
        return None

    async def _partition(self, fault: Fault) -> str | None:
        host = self._host(fault.host)
        network = self.sim.network
        network.isolate(host.address, self._addresses())
        await asyncio.sleep(fault.duration)
        network.heal()
        return None

    async def _one_way(self, fault: Fault) -> str | None:
        a, b = self._host(fault.host), self._host(fault.other)
        if a is b:
            return "one host only"
        self.sim.network.cut(a.address, b.address)
        await asyncio.sleep(fault.duration)
        self.sim.network.heal()
        return None

    async def _flaky(self, fault: Fault) -> str | None:
        network = self.sim.network
        rtt = self._rtt
        network.faults = MessageFaults(
            drop=0.1, duplicate=0.1, delay_rate=0.3, delay=(0.0, 2 * rtt)
        )
        await asyncio.sleep(fault.duration)
        network.faults = MessageFaults()
        return None

    async def _disk_full(self, fault: Fault) -> str | None:
        found = self._leader(self.sim.shard_id)  # the host that writes every entry
        host = found[0] if found is not None else self._host(fault.host)
        if not host.up:
            return f"{host} is down"
        host.store.fail_next_write()
        await asyncio.sleep(fault.duration)
        # An operator freed space and restarted it (a failed log write stopped it, or
        # the failure is still armed and is disarmed by reopening the store).
        host.crash(power_cut=False)
        host.restart()
        return None

    async def _snapshot(self, fault: Fault) -> str | None:
        sim = self.sim
        host = self._host(fault.host)
        if not host.up or host.nh is None:
            return f"{host} is down"
        try:
            outcome = await _settled(host.nh.request_snapshot(sim.shard_id, None, 5.0), 6.0)
        except RaftError as exc:
            return f"request refused: {exc}"
        # Cut another host off while the log moves on, so it needs the snapshot.
        other = self._host(fault.other)
        sim.network.isolate(other.address, self._addresses())
        await asyncio.sleep(fault.duration)
        sim.network.heal()
        if outcome is None:
            return "no answer (its host crashed)"
        return None if outcome.completed() or outcome.rejected() else f"{outcome.code.name}"

    async def _membership(self, fault: Fault) -> str | None:
        sim = self.sim
        shard_id = sim.shard_id
        found = self._leader(shard_id)
        if found is None:
            return "no leader"
        leader_host, _, _ = found
        assert leader_host.nh is not None
        new = sim.spare_host()
        rid = sim.next_replica_id()
        try:
            outcome = await _settled(
                leader_host.nh.request_add_replica(shard_id, rid, new.address, 0, 5.0), 6.0
            )
        except RaftError as exc:
            return f"add refused: {exc}"
        if outcome is None or not outcome.completed():
            sim.trace(f"add of replica {rid} ended {outcome.code.name if outcome else '?'}")
            if outcome is not None and (outcome.rejected() or outcome.dropped()):
                return "add not made"
        sim.join_host(new, shard_id, rid)
        sim.events["replicas added"] += 1
        await asyncio.sleep(fault.duration / 2)
        # Remove an old member, never the last ones.
        victims = [h for h in sim.voting_hosts() if h is not new and shard_id in h.plans]
        if len(victims) < 3:
            return None
        victim = victims[fault.other % len(victims)]
        rid_out = victim.plans[shard_id].replica_id
        found = self._leader(shard_id)
        if found is None or found[0].nh is None:
            return None
        try:
            removed = await _settled(
                found[0].nh.request_delete_replica(shard_id, rid_out, 0, 5.0), 6.0
            )
        except RaftError:
            return None
        if removed is not None and removed.completed():
            sim.events["replicas removed"] += 1
            sim.retire(victim)
        await asyncio.sleep(fault.duration / 2)
        return None

    async def _transfer(self, fault: Fault) -> str | None:
        sim = self.sim
        found = self._leader(sim.shard_id)
        if found is None:
            return "no leader"
        target = self._host(fault.other)
        plan = target.plans.get(sim.shard_id)
        if plan is None or not target.up or found[0].nh is None:
            return "no target"
        try:
            found[0].nh.request_leader_transfer(sim.shard_id, plan.replica_id)
        except RaftError as exc:
            return str(exc)
        await asyncio.sleep(fault.duration)
        return None

    async def _figure_8(self, fault: Fault) -> str | None:
        """Raft thesis figure 3.7 on three hosts (see tests/chaos/nemesis.py):
        1. cut the leader A off: its clients' proposals stay on A only, in term K;
        2. B and C elect W, whose own entries never reach the voter V;
        3. cut W off, reconnect A and V: A wins a later term and only its term-K entries
           reach V: on a majority, not of A's term, so a correct leader does not commit;
        4. cut A off, reconnect W and V: W's log is newer, W wins and overwrites them."""
        sim = self.sim
        shard_id = sim.shard_id
        network = sim.network
        found = await self._wait_leader(shard_id, None, 0, 5.0)
        if found is None:
            return "no leader to start from"
        a, a_rid, term = found
        others = [h for h in sim.voting_hosts() if h is not a and h.up]
        if len(others) < 2:
            return "fewer than three hosts up"
        b, c = others[0], others[1]
        rid = {h: h.plans[shard_id].replica_id for h in (a, b, c)}
        hold = {"shard": shard_id, "max_term": term}
        network.rules = (
            SteeringRule(from_id=rid[a], to=rid[b], **hold),
            SteeringRule(from_id=rid[a], to=rid[c], **hold),
            SteeringRule(from_id=rid[b], to=rid[c], **hold),
            SteeringRule(from_id=rid[c], to=rid[b], **hold),
        )
        addresses = self._addresses()
        network.isolate(a.address, addresses)
        w_found = await self._wait_leader(shard_id, {rid[b], rid[c]}, term, 5.0)
        if w_found is None:
            network.rules = ()
            network.heal()
            return "B and C elected nobody"
        w, _, w_term = w_found
        v = c if w is b else b
        await asyncio.sleep(20 * self._rtt)
        network.heal()
        network.isolate(w.address, addresses)
        again = await self._wait_leader(shard_id, {a_rid}, w_term, 5.0)
        await asyncio.sleep(30 * self._rtt)
        network.heal()
        network.isolate(a.address, addresses)
        network.rules = ()
        last = await self._wait_leader(
            shard_id, {rid[w], rid[v]}, again[2] if again else w_term, 3.0
        )
        await asyncio.sleep(20 * self._rtt)
        network.heal()
        if again is None:
            return "A did not lead again"
        if last is None:
            return "neither W nor V led after A"
        return None

    async def _lagging_leader(self, fault: Fault) -> str | None:
        """A follower T that hears of commits late becomes leader by transfer, and its
        own entries are held back: until one commits, its commit index is behind what
        clients were told (thesis 6.4), so a correct leader serves no read yet."""
        sim = self.sim
        shard_id = sim.shard_id
        network = sim.network
        found = await self._wait_leader(shard_id, None, 0, 5.0)
        if found is None:
            return "no leader to start from"
        leader, _, term = found
        followers = [h for h in sim.voting_hosts() if h is not leader and h.up and h.nh]
        if not followers:
            return "no follower up"
        t = followers[fault.other % len(followers)]
        assert t.nh is not None
        rid = t.plans[shard_id].replica_id
        info = t.nh.get_node_host_info(NodeHostInfoOption(skip_log_info=True))
        applied = next((s.applied_index for s in info.shard_info_list if s.shard_id == shard_id), 0)
        network.rules = (
            SteeringRule(shard=shard_id, to=rid, max_commit=applied),
            SteeringRule(shard=shard_id, from_id=rid, max_term=term),
        )
        await asyncio.sleep(20 * self._rtt)
        assert leader.nh is not None
        try:
            leader.nh.request_leader_transfer(shard_id, rid)
        except RaftError:
            pass
        led = await self._wait_leader(shard_id, {rid}, term, 2.0)
        await asyncio.sleep(20 * self._rtt)
        network.rules = ()
        await asyncio.sleep(20 * self._rtt)
        return None if led is not None else "T never led"


async def _settled(rs: RequestState, timeout: float) -> RequestResult | None:
    """The outcome of `rs`, or None when none came in `timeout` (its host crashed: a
    request's own deadline is swept by the engine that died with it)."""
    try:
        return await asyncio.wait_for(_wait(rs), timeout)
    except TimeoutError:
        return None


async def _wait(rs: RequestState) -> RequestResult:
    return await rs
