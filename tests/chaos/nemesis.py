"""The nemesis: faults on a seeded schedule, one at a time, each healed before the next.

Rules:
- The schedule (which fault, when, for how long, which host when the choice is
  not "the leader") comes from the run's seed alone, so a run replays its faults;
  choices that depend on leadership are made when the fault starts.
- Every fault ends by undoing itself (restart, resume, heal), so the next one starts
  from a whole cluster, and `heal` undoes whatever an interrupted one left.
- Membership changes never leave a host without a replica for long: `reconcile`
  brings every host back into every shard after each change and at the end.
- Only what happened counts. Each fault returns None once it did what it is for (the
  process died, every live host took the network rules, the leadership moved, the
  cut-off host received a snapshot...) or the reason it did not; `attempted` counts
  every start, `injected` only the faults that happened, and `not_injected` lists the
  others with their reasons. A fault that raised counts as not injected.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.chaos.cluster import Cluster, Host, Network

# Fault kinds and their weight in a random schedule.
KINDS: dict[str, float] = {
    "kill-one": 1.0,
    "kill-leader": 1.0,
    "kill-all": 0.6,
    "pause-leader": 1.2,
    "partition-one": 1.0,
    "partition-leader": 1.0,
    "partition-asymmetric": 0.8,
    "partition-bridge": 0.8,
    "drop-reorder": 1.0,
    "transfer-leader": 0.8,
    "membership": 0.6,
    "snapshot": 0.6,
    "snapshot-catchup": 0.8,
    # Scripted sequences aimed at one class of bug each (see their docstrings).
    "figure-8": 0.4,
    "lagging-leader": 0.4,
}


@dataclass(frozen=True, slots=True)
class Fault:
    gap: float  # seconds of quiet before it starts
    kind: str
    duration: float
    host: int  # a host for faults that pick one at random
    other: int  # a second host (bridge, asymmetric direction), distinct from `host`
    shard_pick: float  # in [0, 1): which shard, for faults on one shard


def schedule(seed: int, seconds: float, kinds: dict[str, float], hosts: int) -> list[Fault]:
    """The faults of one run, each after a short quiet gap. Planned for twice
    `seconds` and a minute more at nominal durations: restarts on a busy machine take
    longer, a run may go on until enough faults happened, and the run stops starting
    faults when its time is up, not when the plan ends. A longer plan only adds faults
    at its end, so a seed's first faults never change."""
    rng = random.Random(f"nemesis/{seed}")
    names = sorted(kinds)
    weights = [kinds[k] for k in names]
    faults: list[Fault] = []
    gap = rng.uniform(0.0, 1.0)
    t = gap
    while t < 2 * seconds + 60.0:
        kind = rng.choices(names, weights)[0]
        duration = _duration(kind, rng)
        host = rng.randrange(hosts)
        other = (host + 1 + rng.randrange(hosts - 1)) % hosts
        faults.append(Fault(round(gap, 3), kind, duration, host, other, rng.random()))
        gap = rng.uniform(1.0, 2.5)
        t += duration + gap
    return faults


def _duration(kind: str, rng: random.Random) -> float:
    if kind.startswith("kill"):
        return round(rng.uniform(0.5, 3.0), 3)
    if kind == "pause-leader":
        return round(rng.uniform(1.0, 5.0), 3)
    if kind in ("transfer-leader", "snapshot", "membership"):
        return 0.5
    if kind == "figure-8":
        return 15.0
    if kind == "lagging-leader":
        return 9.0
    return round(rng.uniform(2.0, 6.0), 3)


@dataclass
class Nemesis:
    cluster: Cluster
    shards: list[int]
    log: Callable[[str], None]
    attempted: Counter[str] = field(default_factory=Counter)
    injected: Counter[str] = field(default_factory=Counter)
    not_injected: list[dict[str, Any]] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    next_rid: dict[int, int] = field(default_factory=dict)
    membership_changed: bool = False
    stop: threading.Event = field(default_factory=threading.Event)

    # ------------------------------------------------------------------ running

    def run(
        self,
        faults: list[Fault],
        started: float,
        until: float,
        min_injected: int = 0,
        latest: float = math.inf,
    ) -> None:
        """Inject `faults` in order, each after its gap; start none after `until`
        (monotonic seconds) once `min_injected` faults happened, and none after
        `latest` at all; let the one running finish."""
        for fault in faults:
            if not self._sleep_until(time.monotonic() + fault.gap):
                return
            now = time.monotonic()
            if now >= latest or (now >= until and sum(self.injected.values()) >= min_injected):
                return
            begin = time.monotonic()
            self.attempted[fault.kind] += 1
            try:
                reason = getattr(self, "_" + fault.kind.replace("-", "_"))(fault)
            except Exception as exc:  # a fault that cannot run is a finding, not a crash
                reason = f"raised {exc!r}"
                self.problems.append(f"{fault.kind} at {begin - started:.1f}s failed: {exc!r}")
                self.heal()
            at = round(begin - started, 3)
            if reason is None:
                self.injected[fault.kind] += 1
            else:
                self.log(f"{fault.kind} not injected: {reason}")
                self.not_injected.append({"kind": fault.kind, "at": at, "reason": reason})
            self.timeline.append(
                {
                    "kind": fault.kind,
                    "at": at,
                    "seconds": round(time.monotonic() - begin, 3),
                    "injected": reason is None,
                }
            )
            if self.stop.is_set():
                return

    def _sleep_until(self, when: float) -> bool:
        while not self.stop.is_set():
            left = when - time.monotonic()
            if left <= 0:
                return True
            self.stop.wait(min(left, 0.2))
        return False

    def _hold(self, seconds: float) -> None:
        self.stop.wait(seconds)

    def heal(self) -> None:
        """Undo every fault: resume, reconnect, restart."""
        c = self.cluster
        for h in c.hosts:
            h.resume()
        c.set_rewrite({})
        c.set_network(Network())
        self._restart([h for h in c.hosts if not h.alive])

    def _restart(self, hosts: list[Host]) -> None:
        results: dict[int, bool] = {}

        def one(h: Host) -> None:
            results[h.index] = self.cluster.start_host(h)

        threads = [threading.Thread(target=one, args=(h,), daemon=True) for h in hosts]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        for h in hosts:
            if not results.get(h.index):
                self.problems.append(
                    f"host {h.index} did not restart (incarnation {h.incarnation})"
                )

    # ------------------------------------------------------------------ targets

    def leader_host(self) -> int | None:
        """The host leading the most shards (ties: the lowest index); None if no live
        host leads any."""
        leaders = self.cluster.leaders()
        if not leaders:
            return None
        counts = Counter(host for host, _ in leaders.values())
        return max(sorted(counts), key=lambda h: counts[h])

    def shard(self, fault: Fault) -> int:
        return self.shards[int(fault.shard_pick * len(self.shards))]

    def _cut_off(self, host: int) -> set[tuple[int, int]]:
        n = len(self.cluster.hosts)
        return {(host, o) for o in range(n) if o != host} | {
            (o, host) for o in range(n) if o != host
        }

    # ------------------------------------------------------------------ processes

    def _kill(self, hosts: list[Host], seconds: float) -> str | None:
        alive = [h for h in hosts if h.alive]
        for h in alive:
            h.send_kill()  # all at once: none outlives the others by a flush
        for h in alive:
            h.reap()
        killed = [h.index for h in alive if not h.alive]
        self.log(f"killed {killed} for {seconds}s")
        self._hold(seconds)
        self._restart([h for h in hosts if not h.alive])
        if len(killed) < len(hosts):
            missed = sorted({h.index for h in hosts} - set(killed))
            return f"hosts {missed} were not running"
        return None

    def _kill_one(self, fault: Fault) -> str | None:
        return self._kill([self.cluster.hosts[fault.host]], fault.duration)

    def _kill_leader(self, fault: Fault) -> str | None:
        leader = self.leader_host()
        if leader is None:
            return "no live host leads a shard"
        return self._kill([self.cluster.hosts[leader]], fault.duration)

    def _kill_all(self, fault: Fault) -> str | None:
        return self._kill(list(self.cluster.hosts), fault.duration)

    def _pause_leader(self, fault: Fault) -> str | None:
        leader = self.leader_host()
        if leader is None:
            return "no live host leads a shard"
        h = self.cluster.hosts[leader]
        h.pause()
        if not h.paused:
            return f"host {h.index} was not running"
        self.log(f"paused {h.index} for {fault.duration}s")
        self._hold(fault.duration)
        h.resume()
        return None

    # ------------------------------------------------------------------ network

    def _partition(
        self, cuts: set[tuple[int, int]], seconds: float, **random_faults: Any
    ) -> str | None:
        missed = self.cluster.set_network(Network(cuts=cuts, **random_faults))
        self.log(f"network {sorted(cuts)} {random_faults or ''} for {seconds}s")
        self._hold(seconds)
        self.cluster.set_network(Network())
        if missed:
            return f"hosts {missed} did not take the network rules"
        return None

    def _partition_one(self, fault: Fault) -> str | None:
        return self._partition(self._cut_off(fault.host), fault.duration)

    def _partition_leader(self, fault: Fault) -> str | None:
        leader = self.leader_host()
        if leader is None:
            return "no live host leads a shard"
        return self._partition(self._cut_off(leader), fault.duration)

    def _partition_asymmetric(self, fault: Fault) -> str | None:
        """One host can only send, or only receive (its pick: the second host's parity)."""
        cut = self._cut_off(fault.host)
        outbound = fault.other % 2 == 0
        return self._partition(
            {(a, b) for a, b in cut if (a == fault.host) == outbound}, fault.duration
        )

    def _partition_bridge(self, fault: Fault) -> str | None:
        """Two hosts cannot talk; the third (the bridge) talks to both."""
        n = len(self.cluster.hosts)
        a, b = fault.host, fault.other
        assert n >= 3 and a != b
        return self._partition({(a, b), (b, a)}, fault.duration)

    def _drop_reorder(self, fault: Fault) -> str | None:
        return self._partition(
            set(),
            fault.duration,
            drop=0.2,
            duplicate=0.05,
            delay=(0.0, 0.15),
            delay_rate=0.3,
        )

    # ------------------------------------------------------------------ Raft operations

    def _transfer_leader(self, fault: Fault) -> str | None:
        """Move the leadership of every shard to another of its replicas. Injected if
        at least one shard's leadership reached its target."""
        states = self.cluster.states()
        rng = random.Random(fault.shard_pick)
        targets: dict[int, tuple[int, int]] = {}  # shard -> (target replica, term)
        for shard in self.shards:
            views = [s["shards"].get(str(shard)) for s in states.values()]
            views = [v for v in views if v is not None and v["leader"] and v["nodes"]]
            if not views:
                continue
            view = max(views, key=lambda v: v["term"])
            candidates = [r for r in view["nodes"] if r != view["leader"]]
            if not candidates:
                continue
            target = rng.choice(candidates)
            for h in self.cluster.live():
                reply = h.request("transfer", 5.0, shard=shard, target=target)
                if reply is not None and "ok" in reply:
                    targets[shard] = (target, view["term"])
                break
        if not targets:
            return "no shard had a leader and a live host to ask"
        moved = self._wait_moved(targets, 5.0)
        self.log(f"transfer-leader: moved {sorted(moved)} of {sorted(targets)}")
        return None if moved else f"no leadership reached its target {targets}"

    def _wait_moved(self, targets: dict[int, tuple[int, int]], timeout: float) -> set[int]:
        """The shards whose leader is their target replica, in a later term."""
        moved: set[int] = set()
        end = time.monotonic() + timeout
        while time.monotonic() < end and not self.stop.is_set():
            for state in self.cluster.states().values():
                for shard, (target, term) in targets.items():
                    v = state["shards"].get(str(shard))
                    if v is not None and v["rid"] == target == v["leader"] and v["term"] > term:
                        moved.add(shard)
            if len(moved) == len(targets):
                break
            time.sleep(0.1)
        return moved

    def _snapshot(self, fault: Fault) -> str | None:
        """Snapshot and compact every replica of every shard, keeping few entries.
        Injected if at least one replica saved a snapshot."""
        saved = 0
        for shard in self.shards:
            replies = self.cluster.broadcast("snapshot", timeout=10.0, shard=shard, overhead=2)
            saved += sum(1 for r in replies.values() if r is not None and "ok" in r)
        return None if saved else "no replica saved a snapshot"

    def _snapshot_catchup(self, fault: Fault) -> str | None:
        """Cut one host off, compact the others past it, reconnect: it must catch up by
        snapshot. Injected if the host did receive one (it may have caught up from the
        log instead: the others' logs kept what it missed)."""
        host = self.cluster.hosts[fault.host]
        if not host.alive:
            return f"host {host.index} was not running"
        before = host.request("state", 5.0)
        missed = self.cluster.set_network(Network(cuts=self._cut_off(host.index)))
        self.log(f"snapshot-catchup: {host.index} cut off for {fault.duration}s")
        self._hold(fault.duration / 2)
        others = [h for h in self.cluster.live() if h.index != host.index]
        for shard in self.shards:
            self.cluster.broadcast("snapshot", others, timeout=10.0, shard=shard, overhead=0)
        self.cluster.set_network(Network())
        end = time.monotonic() + fault.duration / 2
        received = False
        while not received and time.monotonic() < end and not self.stop.is_set():
            now = host.request("state", 5.0)
            received = _snapshots_received(now) > _snapshots_received(before)
            if not received:
                time.sleep(0.1)
        self._hold(end - time.monotonic())
        if missed:
            return f"hosts {missed} did not take the network rules"
        if before is None or "ok" not in before:
            return f"host {host.index} did not answer before the cut"
        return None if received else f"host {host.index} caught up without a snapshot"

    def _membership(self, fault: Fault) -> str | None:
        """Replace one host's replica of one shard by a new replica id on the same host."""
        shard = self.shard(fault)
        c = self.cluster
        host = c.hosts[fault.host]
        if not host.alive:
            return f"host {host.index} was not running"
        state = host.request("state", 5.0)
        view = state["ok"]["shards"].get(str(shard)) if state and "ok" in state else None
        if view is None:
            return f"host {host.index} runs no replica of shard {shard}"
        helper = next((h for h in c.live() if h.index != host.index), host)
        old = view["rid"]
        self.membership_changed = True
        reply = helper.request("delete_replica", 8.0, shard=shard, rid=old)
        self.log(f"membership: shard {shard} remove {old} on {host.index}: {reply}")
        if reply is None or "ok" not in reply:
            self.reconcile()
            return f"removing replica {old} of shard {shard} failed: {reply}"
        host.request("drop_replica", 10.0, shard=shard)
        return self._add(shard, host, helper)

    def _add(self, shard: int, host: Host, helper: Host) -> str | None:
        rid = self.next_rid.get(shard, len(self.cluster.hosts) + 1)
        self.next_rid[shard] = rid + 1
        reply = helper.request("add_replica", 8.0, shard=shard, rid=rid, address=host.address)
        self.log(f"membership: shard {shard} add {rid} on {host.index}: {reply}")
        if reply is None or "ok" not in reply:
            self.reconcile()
            return f"adding replica {rid} to shard {shard} failed: {reply}"
        joined = host.request("join", 10.0, shard=shard, rid=rid)
        if joined is None or "ok" not in joined:
            return f"replica {rid} of shard {shard} did not start: {joined}"
        return None

    def reconcile(self, deadline: float = 30.0) -> None:
        """Make every host hold a live replica of every shard again (bounded)."""
        for shard in self.shards:
            end = time.monotonic() + deadline
            while time.monotonic() < end:
                if self._reconcile_shard(shard):
                    break
                time.sleep(0.5)
            else:
                self.problems.append(f"shard {shard}: membership not reconciled in {deadline}s")

    def _reconcile_shard(self, shard: int) -> bool:
        c = self.cluster
        live = c.live()
        if len(live) < len(c.hosts):
            return False
        replies = {h.index: h.request("membership", 5.0, shard=shard) for h in live}
        members = next((r["ok"] for r in replies.values() if r and "ok" in r), None)
        if members is None:
            return False
        nodes = {int(k): v for k, v in members["nodes"].items()}
        states = c.states()
        done = True
        for h in c.hosts:
            view = states.get(h.index, {}).get("shards", {}).get(str(shard))
            mine = [rid for rid, address in nodes.items() if address == h.address]
            if view is not None and view["rid"] in nodes:
                continue  # a failed replica stays: it is a finding, not a gap to fill
            done = False
            helper = next(x for x in live if x.index != h.index)
            if view is not None:
                h.request("drop_replica", 10.0, shard=shard)  # removed, still running
            if mine:
                # Added, never joined (the join was lost with a killed process).
                h.request("join", 10.0, shard=shard, rid=max(mine))
            else:
                self._add(shard, h, helper)
        return done

    # ------------------------------------------------------------------ scripted

    def _figure_8(self, fault: Fault) -> str | None:
        """Raft thesis figure 3.7 on three hosts, steered by partitions and by holding
        back REPLICATE entries above a term (the worker's SendFilter):

        1. cut the leader A off: its clients' proposals stay on A only, in term K;
        2. B and C elect one of them, W, whose own entries never reach the voter V;
        3. cut W off, reconnect A and V: A wins a later term, and only its term-K
           entries reach V. They are on a majority but not of A's term: a correct
           leader does not commit them;
        4. cut A off, reconnect W and V: W's log is newer than V's, so W wins and
           overwrites the term-K entries. Had 3 committed them, committed entries
           are now lost.
        """
        shard = self.shard(fault)
        c = self.cluster
        a, term = self._wait_leader(shard, None, 0, 10.0)
        if a is None:
            return "no leader to start from"
        rids = self._rids(shard)
        b, cc = [h for h in range(len(c.hosts)) if h != a][:2]
        self.log(f"figure-8 on shard {shard}: A={a} term {term}")
        # Every leader of a later term keeps its own entries to itself. The rules are
        # set before the cuts and lifted after them: links never open while a rule
        # that should hold them back is missing.
        hold = {"shard": shard, "max_term": term}
        missed = c.set_rewrite(
            {
                a: [{**hold, "to": rids[b]}, {**hold, "to": rids[cc]}],
                b: [{**hold, "to": rids[cc]}],
                cc: [{**hold, "to": rids[b]}],
            }
        )
        missed += c.set_network(Network(cuts=self._cut_off(a)))
        w, w_term = self._wait_leader(shard, {b, cc}, term, 10.0)
        if w is None:
            c.set_rewrite({})
            c.set_network(Network())
            return "B and C elected nobody"
        v = cc if w == b else b
        self._hold(1.0)
        self.log(f"figure-8: W={w} term {w_term}, V={v}")
        c.set_network(Network(cuts=self._cut_off(w)))
        new_a, a_term = self._wait_leader(shard, {a}, w_term, 10.0)
        self.log(f"figure-8: A leads again: {new_a is not None} (term {a_term})")
        self._hold(1.5)
        c.set_network(Network(cuts=self._cut_off(a)))
        c.set_rewrite({})
        last, _ = self._wait_leader(shard, {w, v}, a_term, 6.0)
        self._hold(1.0)
        c.set_network(Network())
        if missed:
            return f"hosts {sorted(set(missed))} did not take the rules"
        if new_a is None:
            return "A did not lead again (step 3)"
        if last is None:
            return "neither W nor V led after A (step 4)"
        return None

    def _lagging_leader(self, fault: Fault) -> str | None:
        """A follower that learned of commits late becomes leader by transfer, and its
        first entry is held back: until an entry of its own term commits, its commit
        index is behind what clients were already told (thesis 6.4, etcd #7331), so a
        correct leader serves no ReadIndex yet.

        1. replica T of one shard hears of no commit past its applied index, and every
           REPLICATE it sends loses its entries of terms above the current one;
        2. after a while (writes go on without T's state machine), leadership moves
           to T; T leads for a while, unable to commit;
        3. the rules are lifted: T's first entry commits and T catches up."""
        shard = self.shard(fault)
        c = self.cluster
        leader, term = self._wait_leader(shard, None, 0, 10.0)
        if leader is None:
            return "no leader to start from"
        t = fault.host if fault.host != leader else fault.other
        state = c.hosts[t].request("state", 5.0)
        view = state["ok"]["shards"].get(str(shard)) if state and "ok" in state else None
        if view is None:
            return f"host {t} has no replica of shard {shard}"
        rid = view["rid"]
        self.log(f"lagging-leader on shard {shard}: T={t} (replica {rid}), leader {leader}")
        lag = {"shard": shard, "to": rid, "max_commit": view["applied"]}
        hold = {"shard": shard, "from": rid, "max_term": term}
        missed = c.set_rewrite({h.index: [lag, hold] for h in c.hosts})
        self._hold(fault.duration / 3)
        for h in c.live():
            h.request("transfer", 5.0, shard=shard, target=rid)
            break
        found, _ = self._wait_leader(shard, {t}, term, 5.0)
        self.log(f"lagging-leader: T leads: {found is not None}")
        self._hold(fault.duration / 3)
        c.set_rewrite({})
        self._hold(fault.duration / 3)
        if missed:
            return f"hosts {missed} did not take the rules"
        return None if found is not None else "T never led"

    def _rids(self, shard: int) -> dict[int, int]:
        return {
            host: s["shards"][str(shard)]["rid"]
            for host, s in self.cluster.states().items()
            if str(shard) in s["shards"]
        }

    def _wait_leader(
        self, shard: int, among: set[int] | None, above: int, timeout: float
    ) -> tuple[int | None, int]:
        end = time.monotonic() + timeout
        while time.monotonic() < end and not self.stop.is_set():
            found = self.cluster.leaders().get(shard)
            if found is not None and found[1] > above and (among is None or found[0] in among):
                return found
            time.sleep(0.05)
        return None, above


def _snapshots_received(reply: dict[str, Any] | None) -> int:
    if reply is None or "ok" not in reply:
        return 0
    return sum(int(v.get("snapshots_received", 0)) for v in reply["ok"]["shards"].values())
