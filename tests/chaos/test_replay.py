"""The command a failing run prints must rebuild the same run options."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.chaos.run import PROFILES, RunOptions, parse_args
from tests.chaos.test_mutants import BUGS

pytestmark = pytest.mark.chaos


@pytest.mark.parametrize(
    "options",
    [
        RunOptions(seed=7),
        RunOptions(seed=8, fault_seconds=90.0, think_ms=(1.0, 3.0)),
        *(RunOptions.of(profile, 11) for profile in PROFILES),
        RunOptions.of("defaults", 12, check_quorum=True, bursts=(1.0, 2.0), fault_seconds=5.0),
        RunOptions.of("tuned", 13, election_rtt=None, quiesce=False, machines=["on-disk"]),
        *(b.options(9) for b in BUGS),
        *(b.options(9, mutated=False) for b in BUGS),
    ],
)
def test_replay_command_rebuilds_the_options(options: RunOptions) -> None:
    words = shlex.split(options.replay())
    assert words[:5] == ["uv", "run", "python", "-m", "tests.chaos.run"]
    parsed, out = parse_args(words[5:])
    assert parsed == options
    assert out == ""


def test_the_default_profile_leaves_the_replica_settings_to_the_library() -> None:
    options = RunOptions.of("defaults", 1)
    assert "--check-quorum" not in options.replay()
    settings = options.replica_settings()
    assert settings["quiesce"] is True
    assert all(v is None for k, v in settings.items() if k != "quiesce"), settings


def test_bad_flags_are_refused_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--seed", "1", "--pre-vote", "maybe"], ["--seed", "1", "--profile", "nope"]):
        with pytest.raises(SystemExit):
            parse_args(argv)
    assert "--pre-vote" in capsys.readouterr().err


@pytest.mark.integration
def test_the_printed_command_reruns_a_run(tmp_path: Path) -> None:
    """The replay command of a short run, run as a user runs it (without `uv run`,
    which only picks this environment), writes the summary of those options."""
    options = RunOptions.of(
        "tuned",
        3,
        shards=1,
        workloads=["kv"],
        faults=["partition-one"],
        fault_seconds=1.0,
        warmup_seconds=0.5,
        after_seconds=0.5,
    )
    words = shlex.split(options.replay())[2:]  # python -m tests.chaos.run ...
    out = tmp_path / "run"
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, *words[1:], "--out", str(out)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["replay"] == options.replay()
    assert summary["ok"] and summary["faults_injected"] == {"partition-one": 1}
    assert f"summary: {out / 'summary.json'}" in done.stdout
