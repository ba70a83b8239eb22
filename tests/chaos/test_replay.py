"""The command a failing run prints must rebuild the same run options."""

from __future__ import annotations

import shlex

import pytest

from tests.chaos.run import RunOptions, parse_args
from tests.chaos.test_mutants import BUGS

pytestmark = pytest.mark.chaos


@pytest.mark.parametrize(
    "options",
    [
        RunOptions(seed=7),
        RunOptions(seed=8, fault_seconds=90.0, think_ms=(1.0, 3.0)),
        *(
            RunOptions(seed=9, faults=b.faults, mutations=[b.mutation.value], **b.extra)  # type: ignore[arg-type]
            for b in BUGS
        ),
    ],
)
def test_replay_command_rebuilds_the_options(options: RunOptions) -> None:
    words = shlex.split(options.replay())
    assert words[:5] == ["uv", "run", "python", "-m", "tests.chaos.run"]
    parsed, out = parse_args(words[5:])
    assert parsed == options
    assert out == ""
