"""Options for the Raft core tests.

`--raft-seed N` reruns the randomized schedules with one seed only: the command a
failing schedule prints (`uv run pytest tests/raft/test_random.py --raft-seed N`).
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--raft-seed",
        type=int,
        default=None,
        help="run the randomized Raft schedules for this one seed",
    )


@pytest.fixture
def raft_seed(request: pytest.FixtureRequest) -> int | None:
    value = request.config.getoption("--raft-seed", default=None)
    return value if isinstance(value, int) else None
