"""Options for the Raft core tests.

`--raft-seed N` (and `--raft-rounds R`) reruns the randomized schedules for one seed:
the command a failing schedule prints.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--raft-seed", type=int, default=None, help="run the randomized Raft schedule for this seed"
    )
    parser.addoption(
        "--raft-rounds", type=int, default=None, help="rounds per randomized Raft schedule"
    )


def _option(request: pytest.FixtureRequest, name: str) -> int | None:
    value = request.config.getoption(name, default=None)
    return value if isinstance(value, int) else None


@pytest.fixture
def raft_seed(request: pytest.FixtureRequest) -> int | None:
    return _option(request, "--raft-seed")


@pytest.fixture
def raft_rounds(request: pytest.FixtureRequest) -> int | None:
    return _option(request, "--raft-rounds")
