"""The suite catches known Raft bugs, each by the damage it does, and nothing else.

Each bug is switched on (Config._mutations, test-only) in a short run with the faults
that expose it, and must show its own kind of violation (a follower serving reads
without ReadIndex shows stale reads, not merely "some violation"); a recovery timeout
or an engine crash does not count. Then a control run with the bug off, at the same
seed and settings, must show no violation at all and must have injected the same
faults: otherwise the kind could come from the schedule, not from the bug. The control
runs as a user replays a failing run: the command the run printed, bug switched off
(so each control also proves that command rebuilds the run).

CI tries a few seeds per bug until one shows the kind, then runs its control. The
long form (--run-slow) runs every seed of SLOW_SEEDS with its control and prints each
bug's catch rate.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from nodehost.raft import Mutation
from tests.chaos.anomalies import Kind
from tests.chaos.run import RunOptions, run

pytestmark = [pytest.mark.chaos, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
SEEDS = 4  # seeds tried per bug in CI before the test fails
SLOW_SEEDS = 8  # seeds per bug in the long form, each with its control run


@dataclass(frozen=True)
class Bug:
    mutation: Mutation
    kind: Kind  # the violation the bug causes
    faults: list[str]
    fault_seconds: float
    why: str
    extra: dict[str, Any] = field(default_factory=dict)

    def options(self, seed: int, mutated: bool = True) -> RunOptions:
        return RunOptions.of(
            "tuned",
            seed,
            faults=self.faults,
            fault_seconds=self.fault_seconds,
            # The first fault starts after a random gap of up to a second: without
            # this a short run may end before it, in one of the pair and not the other.
            min_faults=1,
            warmup_seconds=1.5,
            after_seconds=1.5,
            mutations=[self.mutation.value] if mutated else [],
            recovery_timeout=5.0,
            converge_timeout=5.0,
            check_seconds=30.0,
            **self.extra,
        )


BUGS = [
    Bug(
        Mutation.FOLLOWER_READ_WITHOUT_READ_INDEX,
        Kind.STALE_READ,
        ["partition-one"],
        2.0,
        "a follower's reads miss writes the leader acknowledged",
    ),
    Bug(
        Mutation.ACK_BEFORE_FSYNC,
        Kind.LOST_WRITE,
        ["kill-all"],
        4.0,
        "acknowledged entries and votes vanish when every host is killed at once",
        # Snapshots need their entries saved first; the lazy saves would break that
        # rule, not Raft's.
        {"snapshot_entries": 0},
    ),
    Bug(
        Mutation.SESSION_APPLY_TWICE,
        Kind.APPLIED_TWICE,
        ["drop-reorder"],
        6.0,
        "a session append retried after a timeout appears twice",
        # Attempts shorter than a delayed commit: many retries of committed appends.
        {"session_attempt": 0.1},
    ),
    Bug(
        Mutation.READ_INDEX_BEFORE_FIRST_COMMIT,
        Kind.STALE_READ,
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
        Kind.STATE_HASHES_DIFFER,
        ["figure-8"],
        1.0,
        "figure 8: entries the old leader committed by count are overwritten by a later "
        "leader, so the replicas apply different entries at the same indexes",
        # Many clients on one shard, waiting long: each outstanding proposal is one
        # more entry on each side of the fork (the old leader's and the later one's).
        {
            "op_timeout": 8.0,
            "shards": 1,
            "workloads": ["set"],
            "sync_clients": 4,
            "async_clients": 4,
        },
    ),
]


def _run(options: RunOptions, out: Path) -> dict[str, Any]:
    try:
        return run(options, out)
    except Exception as exc:
        raise AssertionError(f"run crashed; replay: {options.replay()}") from exc


def _injected(bug: Bug, summary: dict[str, Any]) -> int:
    return sum(summary["faults_injected"].get(kind, 0) for kind in bug.faults)


def _check_control(bug: Bug, seed: int, out: Path) -> None:
    """Run the control as a user replays a run: the printed command, bug switched off."""
    options = bug.options(seed, mutated=False)
    words = shlex.split(options.replay())
    assert words[:5] == ["uv", "run", "python", "-m", "tests.chaos.run"]
    done = subprocess.run(
        [sys.executable, *words[3:], "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    summary_path = out / "summary.json"
    assert summary_path.exists(), f"{options.replay()} crashed:\n{done.stderr[-3000:]}"
    control = json.loads(summary_path.read_text())
    assert control["replay"] == options.replay()  # the command rebuilt the same run
    assert done.returncode == (0 if control["ok"] else 1), done.stderr[-3000:]
    assert _injected(bug, control), (
        f"control run of {bug.mutation.value} injected none of {bug.faults}: "
        f"{control['faults_not_injected']}; replay: {control['replay']}"
    )
    assert control["ok"], (
        f"control run of {bug.mutation.value} (bug off, seed {seed}) failed; "
        f"replay: {control['replay']}\n"
        + "\n".join(f"{v['kind']}: {v['detail']}" for v in control["violations"])
    )


@pytest.mark.parametrize("bug", BUGS, ids=lambda b: b.mutation.value)
def test_known_bug_shows_its_kind_and_its_control_run_is_clean(bug: Bug, chaos_out: Path) -> None:
    tried = []
    for seed in range(1, SEEDS + 1):
        summary = _run(bug.options(seed), chaos_out / f"seed-{seed}")
        if _injected(bug, summary) and bug.kind.value in summary["violation_kinds"]:
            detail = next(v["detail"] for v in summary["violations"] if v["kind"] == bug.kind)
            print(f"{bug.mutation.value}: {bug.kind.value} with seed {seed}: {detail[:300]}")
            _check_control(bug, seed, chaos_out / f"control-seed-{seed}")
            return
        tried.append(
            f"seed {seed}: injected {summary['faults_injected']}, "
            f"kinds {summary['violation_kinds']}; replay: {summary['replay']}"
        )
    pytest.fail(
        f"{bug.mutation.value} ({bug.why}) never showed {bug.kind.value!r}:\n" + "\n".join(tried)
    )


@pytest.mark.slow
@pytest.mark.timeout(SLOW_SEEDS * 2 * 150)
@pytest.mark.parametrize("bug", BUGS, ids=lambda b: b.mutation.value)
def test_known_bug_catch_rate(bug: Bug, chaos_out: Path) -> None:
    """Every seed with its control: the bug shows its kind on some seeds, and no
    control run shows anything."""
    caught = []
    for seed in range(1, SLOW_SEEDS + 1):
        summary = _run(bug.options(seed), chaos_out / f"seed-{seed}")
        if _injected(bug, summary) and bug.kind.value in summary["violation_kinds"]:
            caught.append(seed)
        _check_control(bug, seed, chaos_out / f"control-seed-{seed}")
    print(f"{bug.mutation.value}: {bug.kind.value} on {len(caught)}/{SLOW_SEEDS} seeds {caught}")
    assert caught, f"{bug.mutation.value} never showed {bug.kind.value!r}"


def test_a_bug_options_differ_from_its_control_only_by_the_bug() -> None:
    for bug in BUGS:
        mutated, control = bug.options(5), bug.options(5, mutated=False)
        assert dataclasses.replace(mutated, mutations=[]) == control
