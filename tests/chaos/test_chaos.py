"""The chaos suite's main run: every fault kind on a seeded schedule, then the checks.

CI runs a bounded version; `--chaos-minutes N` runs the fault period for N minutes.
A failure prints the seed, the command that replays the run and where its summary is.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tests.chaos.run import RunOptions, run
from tests.conftest import IN_CI

pytestmark = [pytest.mark.chaos, pytest.mark.integration]

CI_FAULT_SECONDS = 25.0


@pytest.mark.long_run
def test_chaos_run_finds_no_violation(request: pytest.FixtureRequest, chaos_out: Path) -> None:
    minutes = request.config.getoption("--chaos-minutes")
    seed = request.config.getoption("--chaos-seed")
    if seed is None:
        seed = random.SystemRandom().randrange(1, 10**6)
    long_run = minutes > 0
    options = RunOptions(
        seed=seed,
        fault_seconds=minutes * 60 if long_run else CI_FAULT_SECONDS,
        warmup_seconds=5.0 if long_run else 3.0,
        after_seconds=10.0 if long_run else 3.0,
        check_seconds=900.0 if long_run else 60.0,
    )
    print(f"chaos seed {seed}: {options.replay()}")
    try:
        summary = run(options, chaos_out)
    except Exception as exc:
        raise AssertionError(
            f"chaos run crashed (seed {seed}); replay: {options.replay()}"
        ) from exc
    brief = {k: summary[k] for k in ("ops", "ops_per_second", "faults_injected", "checker")}
    print(json.dumps(brief, indent=1, default=str))
    assert summary["ok"], (
        f"chaos run failed (seed {seed}); replay: {summary['replay']}\n"
        f"summary: {chaos_out / 'summary.json'}\n" + "\n".join(summary["violations"])
    )
    # A run that did nothing proves nothing.
    assert summary["ops"]["ok"] > (1000 if IN_CI else 2000), summary["ops"]
    assert sum(summary["faults_injected"].values()) >= 3, summary["faults_injected"]
