"""The whole-stack simulation (nodehost.testing.simulation): many seeds, every fault kind,
Raft's properties and linearizable histories; a seed replays byte for byte with the
command a failing run prints; and what a simulated process may and may not do.

The long form runs ten times the seeds with runs three times as long:
    uv run pytest tests/testing/test_simulation.py --run-slow -k many_seeds
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from nodehost import InvalidOperation
from nodehost.testing.simulation import (
    FAULT_KINDS,
    KV,
    KVStateMachine,
    KVWorkload,
    Scenario,
    Simulation,
    SimulationConfig,
)
from nodehost.testing.simulation.loop import Scheduler, SimulationStuck
from statemachine import Entry, IHash, IStateMachine, Result, SnapshotFile, SnapshotFileCollection

ROOT = Path(__file__).resolve().parents[2]
SEEDS = 1000
SLOW_SEEDS = 10_000
PROCESSES = 2  # CI has two cores; the seeds are independent


def _run_seeds(scenario: Scenario, seeds: range) -> list[Any]:
    started = time.perf_counter()
    results = scenario.run_many(seeds, processes=PROCESSES)
    took = time.perf_counter() - started
    failed = [r for r in results if not r.ok]
    faults: Counter[str] = Counter()
    events: Counter[str] = Counter()
    for r in results:
        faults.update(r.faults)
        events.update(r.events)
    print(
        f"{len(results)} seeds in {took:.1f} s: {len(results) / took:.1f} seeds/s on "
        f"{PROCESSES} processes; {sum(r.steps for r in results)} steps, "
        f"{sum(r.operations for r in results)} operations; faults {dict(faults)}; "
        f"events {dict(events)}"
    )
    assert not failed, "\n\n".join(r.report() for r in failed[:5])
    assert set(faults) == set(FAULT_KINDS), f"never injected: {set(FAULT_KINDS) - set(faults)}"
    for event in (
        "power cuts",
        "snapshots installed",
        "writes refused by a full disk",
        "replicas added",
        "replicas removed",
    ):
        assert events[event] > 0, f"no run had {event}: {dict(events)}"
    return results


@pytest.mark.timeout(900)
def test_many_seeds_with_every_fault_kind_keep_raft_safe_and_histories_linearizable() -> None:
    _run_seeds(KV, range(SEEDS))


LONG = Scenario(
    KVStateMachine,
    KVWorkload,
    config=SimulationConfig(window=6.0, faults=(2, 6)),
    name="tests.testing.test_simulation:LONG",
)


@pytest.mark.slow
@pytest.mark.timeout(4 * 3600)
def test_many_seeds_long_form() -> None:
    _run_seeds(LONG, range(SEEDS, SEEDS + SLOW_SEEDS))


# ---------------------------------------------------------------------- replay


def test_a_seed_replays_byte_for_byte_in_this_process_and_with_its_command() -> None:
    first, again = KV.run(11, keep_trace=True), KV.run(11, keep_trace=True)
    assert first.ok, first.report()
    assert first.trace == again.trace and first.digest == again.digest
    assert KV.run(12).digest != first.digest
    assert (
        first.replay
        == "uv run python -m nodehost.testing.simulation nodehost.testing.simulation:KV --seed 11"
    )
    # The command, run as a user would (another process, another hash seed).
    words = first.replay.split()
    assert words[:3] == ["uv", "run", "python"]
    done = subprocess.run(
        [sys.executable, *words[3:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"digest {first.digest}" in done.stdout


class Forgetful(IStateMachine, IHash):
    """A user's bug: replica 2 forgets what it was told (a state machine that is not
    deterministic across replicas)."""

    def __init__(self, shard_id: int, replica_id: int) -> None:
        self.replica_id = replica_id
        self.inner = KVStateMachine()

    def update(self, entry: Entry) -> Result:
        result = self.inner.update(entry)
        if self.replica_id == 2:
            self.inner.data.clear()
        return result

    def lookup(self, query: Any) -> Any:
        return self.inner.lookup(query)

    def save_snapshot(
        self, writer: BinaryIO, files: SnapshotFileCollection, stopped: Callable[[], bool]
    ) -> None:
        self.inner.save_snapshot(writer, files, stopped)

    def recover_from_snapshot(
        self, reader: BinaryIO, files: list[SnapshotFile], stopped: Callable[[], bool]
    ) -> None:
        self.inner.recover_from_snapshot(reader, files, stopped)

    def get_hash(self) -> int:
        return self.inner.get_hash()


FORGETFUL = Scenario(Forgetful, KVWorkload, config=SimulationConfig(kinds={"partition": 1.0}))


def test_a_failing_seed_says_what_broke_and_prints_its_replay_command() -> None:
    with pytest.raises(AssertionError) as failed:
        FORGETFUL.check(3)
    report = str(failed.value)
    command = "uv run python -m nodehost.testing.simulation tests.testing.test_simulation:FORGETFUL --seed 3"
    assert report.splitlines()[-1] == f"replay: {command}"
    assert "state hashes differ" in report or "not linearizable" in report, report
    done = subprocess.run(
        [sys.executable, *command.split()[3:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr[-2000:]
    digest = report.splitlines()[0].rsplit("digest ", 1)[1]
    assert f"digest {digest}" in done.stdout


# ---------------------------------------------------------------------- processes


def test_blocking_calls_refuse_to_run_in_a_simulated_process(tmp_path: Path) -> None:
    seen: list[str] = []

    class Probe(Simulation):
        def _run(self, problems: list[str]) -> Any:
            nemesis = super()._run(problems)
            nh = self.hosts[0].nh
            assert nh is not None
            with pytest.raises(InvalidOperation, match="aio_"):
                nh.sync_propose(nh.get_noop_session(1), b'["put", "k", "v"]', timeout=1.0)
            with pytest.raises(InvalidOperation, match="aio_"):
                nh.sync_read(1, "k", timeout=1.0)
            seen.append("refused")
            return nemesis

    result = Probe(KVStateMachine, KVWorkload, seed=5, root=tmp_path).run()
    assert seen == ["refused"] and result.ok, result.report()


def test_the_scheduler_runs_timers_in_order_on_simulated_time() -> None:
    scheduler = Scheduler(seed=1)
    a, b = scheduler.loop("a"), scheduler.loop("b")
    order: list[tuple[str, float]] = []
    a.call_later(2.0, lambda: order.append(("a2", scheduler.now)))
    b.call_later(1.0, lambda: order.append(("b1", scheduler.now)))
    a.call_later(1.0, lambda: order.append(("a1", scheduler.now)))
    scheduler.run_for(5.0)
    # Timers due at one instant on two loops run in an order drawn from the seed.
    assert sorted(order[:2]) == [("a1", 1001.0), ("b1", 1001.0)]
    assert order[2] == ("a2", 1002.0)
    assert scheduler.now == 1005.0

    async def sleeper() -> float:
        await asyncio.sleep(3.5)
        return scheduler.now

    task = a.create_task(sleeper())
    assert scheduler.run_until(task.done, timeout=10.0)
    assert task.result() == 1008.5


def test_a_crashed_loop_runs_nothing_more_and_refuses_new_work() -> None:
    scheduler = Scheduler(seed=2)
    loop = scheduler.loop("host")
    ran: list[str] = []
    loop.call_soon(lambda: ran.append("soon"))
    loop.call_later(1.0, lambda: ran.append("later"))
    loop.crash()
    scheduler.run_for(2.0)
    assert ran == [] and loop.is_closed()
    with pytest.raises(RuntimeError, match="closed"):
        loop.call_soon(lambda: None)


def test_waiting_is_bounded_in_callbacks_and_in_simulated_time() -> None:
    scheduler = Scheduler(seed=3)
    loop = scheduler.loop("busy")

    def again() -> None:
        loop.call_soon(again)

    loop.call_soon(again)
    with pytest.raises(SimulationStuck):
        scheduler.run_until(lambda: False, timeout=1.0, max_steps=1000)
    quiet = Scheduler(seed=4)
    assert quiet.run_until(lambda: False, timeout=7.0) is False
    assert quiet.now == 1007.0
