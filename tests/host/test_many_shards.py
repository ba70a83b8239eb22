"""One NodeHost hosts a thousand active shards; idle quiesced shards stop ticking."""

from __future__ import annotations

import time
from pathlib import Path

from tests.conftest import IN_CI
from tests.host.cluster import Cluster, encode, wait_for


def test_a_thousand_active_shards(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, size=1, rtt_millisecond=50)
    shards = 1000
    try:
        host = cluster.host(1)
        for shard in range(1, shards + 1):
            cluster.start_shard(shard)
        wait_for(
            lambda: all(host.get_leader_id(s)[2] for s in range(1, shards + 1)),
            timeout=60,
            what="every shard elected itself",
        )
        states = [
            host.propose(host.get_noop_session(s), encode("put", "k", s), timeout=30)
            for s in range(1, shards + 1)
        ]
        assert all(rs.wait().completed() for rs in states)
        assert all(host.stale_read(s, "k") == s for s in range(1, shards + 1))
    finally:
        cluster.close()


def test_quiesced_shards_stop_ticking(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, size=3, rtt_millisecond=10)
    try:
        shards = 20 if IN_CI else 100
        for shard in range(1, shards + 1):
            cluster.start_shard(shard, quiesce=True)
        for shard in range(1, shards + 1):
            cluster.leader(shard)
        host = cluster.host(1)
        engine = host._engine
        assert engine is not None
        wait_for(
            lambda: all(n.loop.quiesced for n in engine.nodes.values()),
            timeout=30,
            what="every shard quiesced",
        )
        # A quiesced shard wakes for a proposal and serves it.
        session = host.get_noop_session(1)
        host.sync_propose(session, encode("put", "woke", 1), timeout=10)
        assert host.sync_read(1, "woke", 5) == 1
        time.sleep(0.1)
    finally:
        cluster.close()


def test_a_woken_shard_ticks_again(tmp_path: Path) -> None:
    # Quiesced replicas get no ticks; once woken they must, or a shard whose leader died
    # while it slept could never elect another.
    cluster = Cluster(tmp_path, size=3, rtt_millisecond=10)
    try:
        cluster.start_shard(1, quiesce=True)
        leader = cluster.leader(1)
        engines = {rid: host._engine for rid, host in cluster.live()}
        wait_for(
            lambda: all(e is not None and e.nodes[1].loop.quiesced for e in engines.values()),
            timeout=30,
            what="every replica quiesced",
        )
        cluster.stop(leader)
        survivor = next(rid for rid, _ in cluster.live())
        host = cluster.host(survivor)
        # The proposal wakes one replica (the dead leader never answers it); that one's
        # vote requests wake the other.
        rs = host.propose(host.get_noop_session(1), encode("put", "k", 1), timeout=1)
        assert not rs.wait().completed()
        assert cluster.leader(1, timeout=30) != leader
    finally:
        cluster.close()
