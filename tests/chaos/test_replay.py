"""The command a failing run prints must rebuild the same run options."""

from __future__ import annotations

import shlex

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
