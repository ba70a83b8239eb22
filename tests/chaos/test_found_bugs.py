"""Minimal reproductions of library bugs the chaos suite found (one test per bug)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.host.cluster import Cluster, wait_for

pytestmark = pytest.mark.chaos


def test_leader_transfer_asked_on_a_follower_moves_leadership(tmp_path: Path) -> None:
    """The core forwards a follower's LEADER_TRANSFER to the leader over the wire, and
    the transport dropped it as a local-only type: asking any host but the leader's
    silently did nothing (found by the lagging-leader schedule)."""
    cluster = Cluster(tmp_path)
    try:
        cluster.start_shard(1)
        leader = cluster.leader(1)
        follower = next(rid for rid in cluster.addresses if rid != leader)
        target = next(rid for rid in cluster.addresses if rid not in (leader, follower))
        cluster.host(follower).request_leader_transfer(1, target)
        wait_for(
            lambda: cluster.host(target).get_leader_id(1)[0] == target,
            timeout=10.0,
            what=f"replica {target} leading after a transfer asked on replica {follower}",
        )
    finally:
        cluster.close()
