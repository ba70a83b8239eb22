"""The chaos suite's main runs: every fault kind on a seeded schedule, then the checks,
once per profile (run.py's PROFILES):

- "tuned": quick elections with check-quorum and pre-vote, frequent snapshots, the
  regular state machine, clients always busy;
- "defaults": every replica setting as nodehost.Config ships it, quiesce on, the
  concurrent and on-disk state machines, clients pausing long enough for idle shards
  to quiesce (and the run must show they did, and woke up).

A run passes only if every check decided and found nothing, it did real work, and
faults really happened (only injected faults count). CI runs each profile once, with
15 s of faults (longer if fewer than three faults happened by then); `--chaos-minutes
N` lengthens every run's fault period to N minutes and `--chaos-runs K` runs K seeds
per profile. A failure prints the seed, the
command that replays the run and where its summary is.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nodehost import Config
from tests.chaos.run import RunOptions, run
from tests.conftest import IN_CI

pytestmark = [pytest.mark.chaos, pytest.mark.integration]

CI_FAULT_SECONDS = 15.0
MIN_FAULTS = 3  # a run goes on past its fault period until this many faults happened


def _options(request: pytest.FixtureRequest, profile: str, run_index: int) -> RunOptions:
    minutes = request.config.getoption("--chaos-minutes")
    seed = request.config.getoption("--chaos-seed")
    if seed is None:
        seed = random.SystemRandom().randrange(1, 10**6)
    else:
        seed += run_index
    long_run = minutes > 0
    return RunOptions.of(
        profile,
        seed,
        fault_seconds=minutes * 60 if long_run else CI_FAULT_SECONDS,
        min_faults=MIN_FAULTS,
        warmup_seconds=5.0 if long_run else 3.0,
        after_seconds=10.0 if long_run else 3.0,
        check_seconds=900.0 if long_run else 60.0,
    )


def _run(options: RunOptions, out: Path) -> dict[str, Any]:
    print(f"chaos seed {options.seed} ({options.profile}): {options.replay()}")
    try:
        summary = run(options, out)
    except Exception as exc:
        raise AssertionError(
            f"chaos run crashed (seed {options.seed}); replay: {options.replay()}"
        ) from exc
    shown = ("ops", "ops_per_second", "faults_attempted", "faults_injected", "raft_events")
    print(json.dumps({k: summary[k] for k in shown}, indent=1, default=str))
    assert summary["ok"], (
        f"chaos run failed (seed {options.seed}, {options.profile}); replay: "
        f"{summary['replay']}\nsummary: {out / 'summary.json'}\n"
        + "\n".join(f"{v['kind']}: {v['detail']}" for v in summary["violations"])
    )
    # A run that did nothing proves nothing.
    assert summary["ops"]["ok"] > (1000 if IN_CI else 2000), summary["ops"]
    assert sum(summary["faults_injected"].values()) >= MIN_FAULTS, (
        summary["faults_injected"],
        summary["faults_not_injected"],
    )
    assert summary["checker"]["linearizable"] == "ok"
    _check_report(out, options)
    return summary


def _check_report(out: Path, options: RunOptions) -> None:
    """The scorecard script, run as a user runs it, reads the run's summary."""
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, str(root / "scripts" / "chaos_report.py"), str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"seed {options.seed:>7}  ok" in done.stdout, done.stdout
    assert f"profile {options.profile}: 1 runs, 1 seeds" in done.stdout, done.stdout
    assert "faults (injected/attempted):" in done.stdout, done.stdout


@pytest.mark.long_run
def test_tuned_profile_finds_no_violation(
    request: pytest.FixtureRequest, chaos_out: Path, chaos_run_index: int
) -> None:
    summary = _run(_options(request, "tuned", chaos_run_index), chaos_out)
    assert summary["replica_config"]["check_quorum"] is True
    assert summary["replica_config"]["pre_vote"] is True


@pytest.mark.long_run
def test_default_config_profile_finds_no_violation(
    request: pytest.FixtureRequest, chaos_out: Path, chaos_run_index: int
) -> None:
    summary = _run(_options(request, "defaults", chaos_run_index), chaos_out)
    shipped = Config(shard_id=1, replica_id=1)
    settings = summary["replica_config"]
    for name in ("election_rtt", "heartbeat_rtt", "check_quorum", "pre_vote", "snapshot_entries"):
        assert settings[name] == getattr(shipped, name), (name, settings)
    assert settings["quiesce"] is True
    assert summary["options"]["machines"] == ["concurrent", "on-disk"]
    # Idle shards quiesced, and woke up for the next burst.
    events = summary["raft_events"]
    assert events.get("quiesced", 0) > 0 and events.get("woke", 0) > 0, events
