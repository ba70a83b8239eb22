"""Client sessions: a retried proposal is applied exactly once (thesis 6.3)."""

from __future__ import annotations

import pytest

from nodehost import InvalidSession, Rejected, Timeout
from tests.host.cluster import Cluster, encode
from tests.host.simcluster import SimCluster


def test_retry_after_timeout_is_applied_once(cluster: Cluster) -> None:
    cluster.start_shard(1)
    leader = cluster.leader(1)
    host = cluster.host(leader)
    session = host.sync_get_session(1, timeout=5)
    # The state machine sleeps longer than the proposal's timeout: the caller sees
    # Timeout although the entry commits and applies.
    with pytest.raises(Timeout):
        host.sync_propose(session, encode("sleep", "slow", 0.6), timeout=0.2)
    # Retry with the same session and series: deduplicated, the cached result returns.
    host.sync_propose(session, encode("sleep", "slow", 0.6), timeout=5)
    result = host.sync_propose(session, encode("incr", "n"), timeout=5)
    assert result.value == 1
    # A retry of an already completed series gets the same result and changes nothing.
    counter = host.get_noop_session(1)
    host.sync_propose(counter, encode("put", "probe", 1), 5)
    assert host.sync_read(1, "n", 5) == 1
    host.sync_close_session(session, timeout=5)


def test_retried_incr_counts_once(sim_cluster: SimCluster) -> None:
    cluster = sim_cluster
    cluster.start_shard(1)
    cluster.leader(1)
    host = cluster.host(2)
    session = host.sync_get_session(1, timeout=5)
    rs1 = host.propose(session, encode("incr", "n"), 5)
    rs2 = host.propose(session, encode("incr", "n"), 5)  # same series: a retry
    assert cluster.wait(rs1).completed() and cluster.wait(rs2).completed()
    assert rs1.result().result.value == rs2.result().result.value == 1
    assert host.sync_read(1, "n", 5) == 1


def test_closed_session_is_rejected(sim_cluster: SimCluster) -> None:
    cluster = sim_cluster
    cluster.start_shard(1)
    cluster.leader(1)
    host = cluster.host(1)
    session = host.sync_get_session(1, timeout=5)
    host.sync_propose(session, encode("put", "a", 1), 5)
    host.sync_close_session(session, timeout=5)
    session.registered()  # pretend it is still open
    with pytest.raises(Rejected):
        host.sync_propose(session, encode("put", "a", 2), 5)
    assert host.sync_read(1, "a", 5) == 1


def test_noop_session_cannot_be_closed(sim_cluster: SimCluster) -> None:
    cluster = sim_cluster
    cluster.start_shard(1)
    host = cluster.host(1)
    with pytest.raises(InvalidSession):
        host.sync_close_session(host.get_noop_session(1), 1)
