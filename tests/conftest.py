"""Suite-wide switches.

- Tests marked `slow` (soaks, many seeds, long fuzzing) run only with `--run-slow`
  or when selected with `-m slow`; CI runs their bounded siblings.
- `CI=true` in the environment marks a CI run; helpers read `IN_CI` to pick bounded sizes.
"""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow") or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow or -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
