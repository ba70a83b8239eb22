from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.host.cluster import Cluster
from tests.host.simcluster import SimCluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def sim_cluster(tmp_path: Path) -> Iterator[SimCluster]:
    """Three NodeHosts on simulated time (simcluster.py), for tests where timing is not
    the point."""
    c = SimCluster(tmp_path)
    try:
        yield c
    finally:
        c.close()
