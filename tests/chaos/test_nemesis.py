"""The nemesis counts only faults that happened, on real worker processes.

Faults are aimed where they cannot work (a host the test killed, a cluster the test
paused whole) and beside them one that can: the summary's `faults_injected` must
hold only the latter, and `faults_not_injected` must say why for each of the others.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from tests.chaos.cluster import Cluster
from tests.chaos.nemesis import Fault, Nemesis
from tests.chaos.run import RunOptions, _worker_config

pytestmark = [pytest.mark.chaos, pytest.mark.integration]


def fault(kind: str, host: int, duration: float = 0.5) -> Fault:
    return Fault(
        gap=0.0, kind=kind, duration=duration, host=host, other=(host + 1) % 3, shard_pick=0.0
    )


def test_a_fault_that_did_not_happen_is_not_counted(tmp_path: Path) -> None:
    options = RunOptions.of("tuned", 5, shards=2)
    cluster = Cluster(tmp_path, _worker_config(options, [1, 2]))
    lines: list[str] = []
    nemesis = Nemesis(cluster, [1, 2], lines.append)
    try:
        cluster.start()
        deadline = time.monotonic() + 30
        while set(cluster.leaders()) != {1, 2}:
            assert time.monotonic() < deadline, "no leaders"
            time.sleep(0.1)

        cluster.hosts[0].kill()  # the test's own doing: faults on host 0 cannot happen
        nemesis.run(
            [fault("membership", 0), fault("snapshot-catchup", 0), fault("snapshot", 1)],
            time.monotonic(),
            math.inf,
        )
        for h in cluster.hosts:
            h.pause()  # nobody answers: no leader to pause, no leadership to move
        nemesis.run(
            [fault("pause-leader", 1), fault("transfer-leader", 2)], time.monotonic(), math.inf
        )
        nemesis.heal()
    finally:
        cluster.close()

    assert dict(nemesis.attempted) == {
        "membership": 1,
        "snapshot-catchup": 1,
        "snapshot": 1,
        "pause-leader": 1,
        "transfer-leader": 1,
    }
    assert dict(nemesis.injected) == {"snapshot": 1}
    reasons = {f["kind"]: f["reason"] for f in nemesis.not_injected}
    assert reasons.keys() == {"membership", "snapshot-catchup", "pause-leader", "transfer-leader"}
    assert "host 0 was not running" in reasons["membership"]
    assert "host 0 was not running" in reasons["snapshot-catchup"]
    assert "no live host leads" in reasons["pause-leader"]
    assert "no shard had a leader" in reasons["transfer-leader"]
    assert [t["injected"] for t in nemesis.timeline] == [False, False, True, False, False]
