"""The simulation catches each known bug (tests/mutants.py), by the damage it does, and
nothing else: a run with the bug built into every NodeHost shows the bug's kind of
violation, and the same seed without the bug (the control) is clean and injected the
same fault kinds. Each bug runs the faults and clients that expose it, as the chaos
suite's tests/chaos/test_mutants.py does with real processes.

CI tries a few seeds per bug until one shows it. The long form runs every seed of
SLOW_SEEDS with its control and prints each bug's catch rate:
    uv run pytest tests/testing/test_simulation_mutants.py --run-slow
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from nodehost.testing.simulation import KVStateMachine, KVWorkload, Scenario, SimulationConfig
from tests.mutants import MUTANTS, Mutant

SEEDS = 8  # seeds tried per bug in CI before the test fails
SLOW_SEEDS = 40


def _reads() -> KVWorkload:
    """Reads most of the time on two keys, the no-op session: a client whose write
    hangs on a leader that cannot commit goes on to read (a session would first have
    to register again, a write)."""
    return KVWorkload(keys=2, reads=0.6, sessions=False)


def _appends() -> KVWorkload:
    """Appends retried under their client session: a command applied twice shows."""
    return KVWorkload(keys=2, reads=0.3, appends=0.7)


@dataclass(frozen=True)
class Bug:
    mutant: Mutant
    shows: tuple[str, ...]  # what a report of the bug says (a violation's kind)
    mutated: Scenario
    control: Scenario


def _bug(name: str, shows: tuple[str, ...], workload: object, config: SimulationConfig) -> Bug:
    mutant = MUTANTS[name]
    attribute = name.upper().replace("-", "_")
    return Bug(
        mutant,
        shows,
        Scenario(
            KVStateMachine,
            workload,  # type: ignore[arg-type]
            config=config,
            logdb_wrapper=mutant.wrap_logdb,
            host_parts=mutant.host_parts(),
            name=f"tests.testing.test_simulation_mutants:{attribute}",
        ),
        Scenario(
            KVStateMachine,
            workload,  # type: ignore[arg-type]
            config=config,
            name=f"tests.testing.test_simulation_mutants:{attribute}_CONTROL",
        ),
    )


ONE_FAULT = (1, 1)
BUGS = [
    _bug(
        "commit-earlier-term-by-count",
        ("state hashes differ", "leader-completeness", "state-machine-safety"),
        KVWorkload,
        SimulationConfig(kinds={"figure-8": 1.0}, faults=ONE_FAULT),
    ),
    _bug(
        "read-index-before-first-commit",
        ("not linearizable",),
        _reads,
        SimulationConfig(
            kinds={"lagging-leader": 1.0},
            faults=ONE_FAULT,
            clients_per_host=3,
            op_timeout=0.5,
            think=(0.0, 0.05),
        ),
    ),
    _bug(
        "follower-read-without-read-index",
        ("not linearizable",),
        _reads,
        SimulationConfig(
            kinds={"partition": 1.0},
            faults=ONE_FAULT,
            clients_per_host=3,
            op_timeout=0.5,
            think=(0.0, 0.05),
        ),
    ),
    _bug(
        "ack-before-fsync",
        ("durability", "election-safety"),
        KVWorkload,
        # Snapshots need their entries saved first, which the lazy store breaks: that
        # rule, not Raft's, would fail first.
        SimulationConfig(kinds={"crash-majority": 1.0}, faults=ONE_FAULT, snapshot_entries=0),
    ),
    _bug(
        "session-apply-twice",
        ("not linearizable",),
        _appends,
        SimulationConfig(
            kinds={"flaky": 1.0},
            faults=ONE_FAULT,
            clients_per_host=2,
            session_attempt=0.1,
            think=(0.0, 0.05),
        ),
    ),
]
for _b in BUGS:  # module attributes, so that each printed replay command imports them
    globals()[_b.mutated.name.split(":")[1]] = _b.mutated
    globals()[_b.control.name.split(":")[1]] = _b.control


def _shows(bug: Bug, problems: list[str]) -> bool:
    return any(kind in p for p in problems for kind in bug.shows)


def _check_control(bug: Bug, seed: int, mutated_faults: set[str]) -> None:
    control = bug.control.run(seed)
    assert control.ok, f"control of {bug.mutant.name} (bug off) failed:\n{control.report()}"
    assert set(control.faults) == mutated_faults, (
        f"control of {bug.mutant.name} injected {dict(control.faults)}, the run with the bug "
        f"{sorted(mutated_faults)}: the kind could come from the schedule"
    )


@pytest.mark.parametrize("bug", BUGS, ids=lambda b: b.mutant.name)
def test_the_simulation_catches_each_known_bug_and_its_control_is_clean(bug: Bug) -> None:
    tried = []
    for seed in range(SEEDS):
        result = bug.mutated.run(seed)
        if _shows(bug, result.problems):
            print(f"{bug.mutant.name}: seed {seed}: {result.problems[0][:200]}")
            _check_control(bug, seed, set(result.faults))
            return
        tried.append(f"seed {seed}: {result.problems[:1] or 'no violation'}; {result.replay}")
    pytest.fail(
        f"{bug.mutant.name} ({bug.mutant.why}) never showed {bug.shows}:\n" + "\n".join(tried)
    )


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("bug", BUGS, ids=lambda b: b.mutant.name)
def test_known_bug_catch_rate_in_the_simulation(bug: Bug) -> None:
    caught = []
    for seed in range(SLOW_SEEDS):
        result = bug.mutated.run(seed)
        if _shows(bug, result.problems):
            caught.append(seed)
        _check_control(bug, seed, set(result.faults))
    print(f"{bug.mutant.name}: caught on {len(caught)}/{SLOW_SEEDS} seeds {caught}")
    assert caught


def test_a_mutated_seed_replays_with_its_printed_command() -> None:
    bug = BUGS[2]  # follower reads: caught at once
    result = bug.mutated.run(0)
    assert not result.ok
    assert result.replay == (
        "uv run python -m nodehost.testing.simulation "
        "tests.testing.test_simulation_mutants:FOLLOWER_READ_WITHOUT_READ_INDEX --seed 0"
    )
    assert bug.mutated.run(0).digest == result.digest
