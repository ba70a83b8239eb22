"""The suite catches known Raft bugs: each switched on (Config._mutations, test-only),
a short run with the faults that expose it must report a violation within a few seeds.

A checker that never fires proves nothing; these runs prove the whole pipeline
(workload, nemesis, histories, checks, replica comparison) can see each bug. The same
schedules without the bug are part of the main run's fault menu.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from nodehost.raft import Mutation
from tests.chaos.run import RunOptions, run

pytestmark = [pytest.mark.chaos, pytest.mark.integration]

SEEDS = 3  # seeds tried per bug before the test fails


@dataclass(frozen=True)
class Bug:
    mutation: Mutation
    faults: list[str]
    fault_seconds: float
    why: str
    extra: dict[str, object] = field(default_factory=dict)


BUGS = [
    Bug(
        Mutation.FOLLOWER_READ_WITHOUT_READ_INDEX,
        ["partition-one"],
        2.0,
        "a follower's reads miss writes the leader acknowledged",
    ),
    Bug(
        Mutation.ACK_BEFORE_FSYNC,
        ["kill-all"],
        4.0,
        "acknowledged entries and votes vanish when every host is killed at once",
        # Snapshots need their entries saved first; the lazy saves would break that
        # rule, not Raft's.
        {"snapshot_entries": 0},
    ),
    Bug(
        Mutation.SESSION_APPLY_TWICE,
        ["drop-reorder"],
        6.0,
        "a session append retried after a timeout appears twice",
        # Attempts shorter than a delayed commit: many retries of committed appends.
        {"session_attempt": 0.1},
    ),
    Bug(
        Mutation.READ_INDEX_BEFORE_FIRST_COMMIT,
        ["lagging-leader"],
        2.0,
        "a new leader reads at a commit index behind what clients were told",
        # Writes through the new leader cannot commit: short timeouts free its
        # clients for the reads that show the bug. Reads must meet the keys written
        # before the transfer: read-heavy workloads, no key rotation in the run.
        {
            "op_timeout": 0.5,
            "session_attempt": 0.25,
            "session_deadline": 1.0,
            "shards": 2,
            "workloads": ["register", "kv"],
            "gen_seconds": 120.0,
        },
    ),
    Bug(
        Mutation.COMMIT_EARLIER_TERM_BY_COUNT,
        ["figure-8"],
        1.0,
        "figure 8: an entry committed by count is overwritten by a later leader",
    ),
]


@pytest.mark.parametrize("bug", BUGS, ids=lambda b: b.mutation.value)
def test_known_bug_is_reported(bug: Bug, chaos_out: Path) -> None:
    tried = []
    for seed in range(1, SEEDS + 1):
        options = RunOptions(
            seed=seed,
            faults=bug.faults,
            fault_seconds=bug.fault_seconds,
            warmup_seconds=1.5,
            after_seconds=1.5,
            mutations=[bug.mutation.value],
            recovery_timeout=5.0,
            converge_timeout=5.0,
            check_seconds=30.0,
            **bug.extra,  # type: ignore[arg-type]
        )
        try:
            summary = run(options, chaos_out / f"seed-{seed}")
        except Exception as exc:
            raise AssertionError(f"run crashed; replay: {options.replay()}") from exc
        if summary["violations"]:
            print(f"{bug.mutation.value} caught with seed {seed}: {summary['violations'][0][:300]}")
            return
        tried.append(summary["replay"])
    pytest.fail(f"{bug.mutation.value} ({bug.why}) went unnoticed in: " + "; ".join(tried))
