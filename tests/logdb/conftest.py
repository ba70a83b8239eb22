"""Every behavioural test of the log store runs against both implementations."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from logdb_support import Store


@pytest.fixture(params=["rocks", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s = Store(request.param, tmp_path / "logdb")
    yield s
    s.close()
