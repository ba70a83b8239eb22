"""A whole cluster simulated in one process, from one seed.

    result = Simulation(KVStateMachine, KVWorkload, seed=7).run()
    assert result.ok, result.report()

Several NodeHosts, each in its own simulated process, run the real engine, replicas,
state machine layer, sessions, snapshots and membership changes over the in-memory
transport and log store, on simulated time, in an order drawn from the seed. Clients
(clients.py) write and read while faults (nemesis.py) hit the cluster; then the
network heals, every process comes back, and the run checks that:

- no Raft safety property broke at any moment (invariants.py),
- the replicas converged: the members applied the same index and hold equal state,
  and none failed,
- the clients' history is linearizable under the workload's model (a check that
  cannot decide counts as a failure),
- no callback of any process raised where nothing handled it.

Rules:
- A run is a function of its seed and its settings: the same seed replays the same
  run, byte for byte (`digest` covers every fault, answer and leader); `replay` is the
  one command that does it.
- Nothing here reads the wall clock except to report how long the run took.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import shutil
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodehost import Config, LeaderInfo, NodeHostInfoOption, RaftError
from nodehost.testing.lincheck import check_operations
from nodehost.testing.simulation.clients import Clients
from nodehost.testing.simulation.config import SimulationConfig
from nodehost.testing.simulation.hosts import LogDBWrapper, ReplicaPlan, SimulatedHost
from nodehost.testing.simulation.invariants import SafetyChecker
from nodehost.testing.simulation.loop import Scheduler
from nodehost.testing.simulation.machines import recorded
from nodehost.testing.simulation.nemesis import Nemesis, plan
from nodehost.testing.simulation.network import MessageFaults, SimulatedNetwork
from nodehost.testing.simulation.workload import Workload
from statemachine import StateMachineType


@dataclass
class RunResult:
    seed: int
    problems: list[str]
    faults: Counter[str]
    skipped: list[str]
    operations: int
    completed: int
    unknown: int
    steps: int
    simulated_seconds: float
    wall_seconds: float
    digest: str
    replay: str
    events: dict[str, int] = field(default_factory=dict)
    trace: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def report(self) -> str:
        lines = [
            f"seed {self.seed}: {'ok' if self.ok else 'FAILED'}; faults {dict(self.faults)}; "
            f"{'; '.join(f'{k} {v}' for k, v in sorted(self.events.items())) or 'no events'}; "
            f"{self.operations} operations ({self.completed} answered, {self.unknown} unknown); "
            f"{self.steps} steps, {self.simulated_seconds:.2f} simulated s, "
            f"{self.wall_seconds:.2f} s; digest {self.digest}",
        ]
        lines += [f"  {p}" for p in self.problems]
        lines.append(f"replay: {self.replay}")
        return "\n".join(lines)


class Simulation:
    def __init__(
        self,
        create: Callable[[int, int], Any],
        workload: Callable[[], Workload] | None = None,
        *,
        seed: int,
        kind: StateMachineType = StateMachineType.REGULAR,
        config: SimulationConfig | None = None,
        root: str | Path | None = None,
        logdb_wrapper: LogDBWrapper | None = None,
        host_parts: dict[str, Any] | None = None,
        replay: str = "",
        keep_trace: bool = False,
    ) -> None:
        self.seed = seed
        self.create = create
        self.kind = kind
        self.config = config or SimulationConfig()
        self.workload: Workload = workload() if workload is not None else _NoWorkload()
        self.has_clients = workload is not None
        self.logdb_wrapper = logdb_wrapper
        self.host_parts = dict(host_parts or {})
        self.replay = replay or f"<no replay command given> (seed {seed})"
        self.keep_trace = keep_trace
        self.shard_id = 1
        self.scheduler = Scheduler(seed)
        self.rng = random.Random(f"simulation/{seed}")
        self.network = SimulatedNetwork(random.Random(f"network/{seed}"))
        self.checker = SafetyChecker(self.scheduler.monotonic)
        self.clients = Clients(self)
        self.hosts: list[SimulatedHost] = []
        self._retired: set[int] = set()
        self._next_rid = 1
        self._root_given = root is not None
        self._root = Path(root) if root is not None else Path(_scratch())
        self.events: Counter[str] = Counter()  # what happened, beyond the faults injected
        self._digest = hashlib.blake2b(digest_size=16)
        self._trace: list[str] = []

    # ------------------------------------------------------------------ parts

    def trace(self, text: str) -> None:
        line = f"{self.scheduler.now:.6f} {text}"
        self._digest.update(line.encode())
        self._digest.update(b"\n")
        if self.keep_trace:
            self._trace.append(line)

    def leader_seen(self, info: LeaderInfo) -> None:
        self.checker.leader(info.shard_id, info.term, info.leader_id, info.replica_id)
        self.trace(f"leader {info.shard_id}/{info.replica_id}: {info.leader_id} t{info.term}")

    def recorded_factory(self) -> Callable[[int, int], Any]:
        checker = self.checker
        return recorded(self.kind, self.create, checker.applied, checker.rebuilt)

    def replica_config(self, shard_id: int, replica_id: int) -> Config:
        c = self.config
        return Config(
            shard_id=shard_id,
            replica_id=replica_id,
            election_rtt=c.election_rtt,
            heartbeat_rtt=c.heartbeat_rtt,
            check_quorum=True,
            pre_vote=c.pre_vote,
            snapshot_entries=c.snapshot_entries,
            compaction_overhead=c.compaction_overhead,
        )

    def _new_host(self) -> SimulatedHost:
        index = len(self.hosts)
        directory = self._root / f"host{index}"
        host = SimulatedHost(self, index, f"host{index}:7000", directory)
        self.hosts.append(host)
        return host

    def spare_host(self) -> SimulatedHost:
        """A machine that runs nothing yet (made on demand)."""
        for host in self.hosts:
            if not host.plans and host.index not in self._retired:
                return host
        return self._new_host()

    def next_replica_id(self) -> int:
        rid = self._next_rid
        self._next_rid += 1
        return rid

    def voting_hosts(self) -> list[SimulatedHost]:
        """The machines that run a replica of the shard and were not retired."""
        return [h for h in self.hosts if h.plans and h.index not in self._retired]

    def retire(self, host: SimulatedHost) -> None:
        """Its replica was removed from the shard: the machine is shut down for good."""
        self._retired.add(host.index)
        host.crash(power_cut=False)
        self.trace(f"retired {host}")

    def join_host(self, host: SimulatedHost, shard_id: int, replica_id: int) -> None:
        host.plans[shard_id] = ReplicaPlan(shard_id, replica_id, {}, True)
        if host.up:
            host.start_replica(host.plans[shard_id])
        else:
            host.boot()

    # ------------------------------------------------------------------ the run

    def run(self) -> RunResult:
        started = time.perf_counter()
        problems: list[str] = []
        nemesis = Nemesis(self, [])
        try:
            nemesis = self._run(problems)
        except Exception as exc:  # a crash of the simulation itself is a finding too
            problems.append(f"the run raised {exc!r}")
            problems.append(_shorten(traceback.format_exc(), 3000))
        finally:
            self._teardown()
        problems += [f"{v.kind} at {v.time:.6f}: {v.detail}" for v in self.checker.violations]
        problems += [f"unhandled error in {e}" for e in self.scheduler.errors]
        ops = self.clients.recorder.operations()
        if not problems and self.workload.model is not None and ops:
            verdict = check_operations(self.workload.model, ops, timeout=self.config.check_seconds)
            if not verdict.ok:
                problems.append(
                    f"history not linearizable ({verdict.verdict.name}): "
                    + _shorten(verdict.explanation, 3000)
                )
        for p in problems:
            self.trace(f"problem {p}")
        return RunResult(
            seed=self.seed,
            problems=problems,
            faults=nemesis.injected,
            skipped=nemesis.skipped,
            operations=len(ops),
            completed=self.clients.completed,
            unknown=sum(1 for o in ops if math.isinf(o.return_time)),
            steps=self.scheduler.steps,
            simulated_seconds=self.scheduler.now - 1_000.0,
            wall_seconds=time.perf_counter() - started,
            digest=self._digest.hexdigest(),
            replay=self.replay,
            events=self._events(),
            trace=self._trace,
        )

    def _run(self, problems: list[str]) -> Nemesis:
        c = self.config
        scheduler = self.scheduler
        # The founding members.
        members = {}
        for _ in range(c.hosts):
            host = self._new_host()
            members[self.next_replica_id()] = host.address
        for rid, host in zip(members, self.hosts, strict=True):
            host.plans[self.shard_id] = ReplicaPlan(self.shard_id, rid, dict(members), False)
        begin = scheduler.now
        self.clients.until = begin + c.warmup + c.window
        for host in self.hosts:
            host.boot()
        faults = plan(self.seed, c.kinds, c.hosts, c.window, c.faults)
        nemesis = Nemesis(self, faults)
        control = scheduler.loop("nemesis")

        async def inject() -> None:
            await asyncio.sleep(c.warmup)
            await nemesis.run()

        task = control.create_task(inject(), name="nemesis")
        scheduler.run_until_time(self.clients.until)
        # Let the last fault run its course (a crashed host is restarted by it).
        scheduler.run_until(task.done, timeout=60.0)
        if not task.done():
            problems.append("the faults did not finish within 60 simulated seconds")
        elif task.exception() is not None:
            problems.append(f"the nemesis raised {task.exception()!r}")
        control.crash()
        self._heal()
        if not scheduler.run_until(self._converged, timeout=c.settle):
            problems.append(f"no convergence {c.settle} s after healing: {self._state()}")
        else:
            self._compare_states(problems)
        return nemesis

    def _heal(self) -> None:
        network = self.network
        network.heal()
        network.rules = ()
        network.faults = MessageFaults()
        for host in self.voting_hosts():
            if not host.up:
                host.restart()
        self.trace("healed")

    def _views(self) -> dict[int, tuple[SimulatedHost, Any]]:
        """replica id -> (host, ShardInfo) of every live replica of the shard."""
        views: dict[int, tuple[SimulatedHost, Any]] = {}
        for host in self.voting_hosts():
            if host.nh is None:
                continue
            try:
                info = host.nh.get_node_host_info(NodeHostInfoOption(skip_log_info=True))
            except RaftError:
                continue
            for shard in info.shard_info_list:
                if shard.shard_id == self.shard_id:
                    views[shard.replica_id] = (host, shard)
        return views

    def _converged(self) -> bool:
        views = self._views()
        leaders = {s.leader_id for _, s in views.values() if not s.is_removed}
        if len(leaders) != 1 or 0 in leaders:
            return False
        leader = leaders.pop()
        if leader not in views:
            return False
        lead = views[leader][1]
        members = set(lead.nodes) | set(lead.non_votings) | set(lead.witnesses)
        if not members <= set(views):
            return False
        applied = {views[rid][1].applied_index for rid in members if rid not in lead.witnesses}
        return len(applied) == 1 and applied.pop() > 0

    def _state(self) -> str:
        views = self._views()
        shown = [
            f"replica {rid} on {host}: leader {s.leader_id} term {s.term} applied "
            f"{s.applied_index}{' failed: ' + s.failed if s.failed else ''}"
            for rid, (host, s) in sorted(views.items())
        ]
        down = [str(h) for h in self.voting_hosts() if not h.up]
        return "; ".join(shown) + (f"; down: {down}" if down else "")

    def _compare_states(self, problems: list[str]) -> None:
        views = self._views()
        hashes: dict[int, int] = {}
        for rid, (host, shard) in sorted(views.items()):
            if shard.failed:
                problems.append(f"replica {rid} on {host} failed: {shard.failed}")
            if shard.is_removed or shard.is_witness or host.nh is None:
                continue
            try:
                hashes[rid] = host.nh.get_state_hash(self.shard_id)
            except RaftError as exc:
                problems.append(f"replica {rid} on {host}: no state hash: {exc}")
        if len(set(hashes.values())) > 1:
            problems.append(f"state hashes differ after convergence: {hashes}")
        self.trace(f"hashes {sorted(hashes.items())}")

    def _events(self) -> dict[str, int]:
        events = dict(self.events)
        if self.checker.failed_writes:
            events["writes refused by a full disk"] = self.checker.failed_writes
        return events

    def _teardown(self) -> None:
        for host in self.hosts:
            host.crash(power_cut=False)
        if not self._root_given:
            shutil.rmtree(self._root, ignore_errors=True)
        else:
            for host in self.hosts:
                shutil.rmtree(host.directory, ignore_errors=True)


class _NoWorkload(Workload):
    """No clients: the cluster runs, and faults hit it, with nothing proposed."""

    sessions = False

    def next(self, rng: random.Random, client_id: int) -> Any:
        raise AssertionError("no workload: no client is started")


def _scratch() -> str:
    """A directory for the run's NodeHost directories: in memory where the machine has
    one (snapshots are written and synced there), else the temporary directory."""
    shm = Path("/dev/shm")
    base = str(shm) if shm.is_dir() else None
    return tempfile.mkdtemp(prefix="nodehost-simulation-", dir=base)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 20] + f" ... ({len(text)} chars)"
