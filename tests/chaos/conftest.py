"""Options of the chaos suite.

    uv run pytest tests/chaos                       # CI: bounded runs
    uv run pytest tests/chaos --chaos-minutes 30    # each profile's faults last 30 min
    uv run pytest tests/chaos --chaos-runs 4        # 4 seeds per profile
    uv run pytest tests/chaos --chaos-seed 42       # the main runs with a chosen seed
    uv run pytest tests/chaos --run-slow            # also every known bug on many seeds

Without --chaos-seed each main run draws a seed and prints it (with --chaos-seed S,
run i of a profile uses S + i); every failing run names the one command that replays
it. --chaos-out keeps each run's directory (histories, logs, summary.json) under the
given path instead of pytest's tmp_path.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("chaos")
    group.addoption(
        "--chaos-minutes",
        type=float,
        default=0.0,
        help="length of the main chaos run's fault period in minutes (0: the CI run)",
    )
    group.addoption("--chaos-seed", type=int, default=None, help="seed of the main chaos runs")
    group.addoption(
        "--chaos-runs", type=int, default=1, help="seeds run per profile by the main runs"
    )
    group.addoption("--chaos-out", default="", help="keep run directories under this path")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "long_run: the chaos run that --chaos-minutes lengthens (and its timeout)"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "chaos_run_index" in metafunc.fixturenames:
        runs = metafunc.config.getoption("--chaos-runs")
        if runs < 1:
            raise pytest.UsageError("--chaos-runs must be at least 1")
        metafunc.parametrize("chaos_run_index", range(runs), ids=lambda i: f"run{i + 1}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    minutes = config.getoption("--chaos-minutes")
    if minutes <= 0:
        return
    # A long run outlasts the suite's per-test timeout: allow its faults plus checking.
    for item in items:
        if item.get_closest_marker("long_run") is not None:
            item.add_marker(pytest.mark.timeout(minutes * 60 + 1800))


@pytest.fixture
def chaos_out(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    base = request.config.getoption("--chaos-out")
    if not base:
        return tmp_path
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    path = Path(base) / name
    path.mkdir(parents=True, exist_ok=True)
    return path
