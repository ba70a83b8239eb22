"""Randomized schedules (schedule.py): faults, load, membership, transfers, snapshots.

Safety is checked after every step by the network; at the end the shard must settle
with every acknowledged proposal applied exactly once everywhere. CI runs 500 seeds;
`--run-slow` runs 5,000 longer ones. A failure prints the command that replays it:

    uv run pytest tests/raft/test_random.py --raft-seed SEED --raft-rounds ROUNDS
"""

from __future__ import annotations

import pytest

from .network import Network
from .schedule import run_schedule

CI_CHUNKS, CI_PER_CHUNK, CI_ROUNDS = 10, 50, 100
SLOW_CHUNKS, SLOW_PER_CHUNK, SLOW_ROUNDS = 20, 250, 300
SLOW_FIRST_SEED = 100_000


def check(seed: int, rounds: int) -> None:
    try:
        run_schedule(seed, rounds)
    except Exception as e:
        nets: list[Network] = []
        try:
            run_schedule(seed, rounds, net=nets)
        except Exception:
            pass
        trace = nets[0].trace if nets and nets[0].trace is not None else []
        tail = "\n".join(trace[-40:])
        pytest.fail(
            f"schedule {seed} failed: {e}\n"
            f"replay: uv run pytest tests/raft/test_random.py --raft-seed {seed} "
            f"--raft-rounds {rounds}\n"
            f"last events:\n{tail}",
            pytrace=False,
        )


@pytest.mark.parametrize("chunk", range(CI_CHUNKS))
def test_random_schedules(chunk: int, raft_seed: int | None, raft_rounds: int | None) -> None:
    if raft_seed is not None:
        if chunk:
            pytest.skip("one seed asked for")
        check(raft_seed, raft_rounds or CI_ROUNDS)
        return
    for seed in range(chunk * CI_PER_CHUNK, (chunk + 1) * CI_PER_CHUNK):
        check(seed, raft_rounds or CI_ROUNDS)


@pytest.mark.slow
@pytest.mark.parametrize("chunk", range(SLOW_CHUNKS))
def test_random_schedules_long(chunk: int) -> None:
    first = SLOW_FIRST_SEED + chunk * SLOW_PER_CHUNK
    for seed in range(first, first + SLOW_PER_CHUNK):
        check(seed, SLOW_ROUNDS)


def test_a_schedule_replays_exactly() -> None:
    traces = []
    for _ in range(2):
        nets: list[Network] = []
        run_schedule(7, 60, net=nets)
        traces.append(nets[0].trace)
    assert traces[0] == traces[1]
    assert traces[0] and len(traces[0]) > 50
