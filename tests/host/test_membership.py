"""Membership: add, remove, non-voting, witness, ordered changes, leader transfer.

On simulated time (simcluster.py): what is tested is who is a member, not how long a
change takes, so every wait runs the cluster instead of polling the clock."""

from __future__ import annotations

import pytest

from nodehost import Rejected
from tests.host.cluster import encode
from tests.host.simcluster import SimCluster


def test_add_a_replica_that_joins_then_remove_it(sim_cluster: SimCluster) -> None:
    cluster = sim_cluster
    cluster.start_shard(1)
    leader = cluster.leader(1)
    host = cluster.host(leader)
    cluster.propose_retrying(host, 1, encode("put", "before", 1))
    new = cluster.add_host(4)
    host.sync_request_add_replica(1, 4, cluster.addresses[4], 0, timeout=5)
    cluster.start_replica(4, 1, {}, True)
    cluster.wait_for(lambda: new.stale_read(1, "before") == 1, what="replica 4 caught up")
    cluster.propose_retrying(host, 1, encode("put", "after", 2))
    cluster.wait_for(lambda: new.stale_read(1, "after") == 2, what="replica 4 gets new entries")
    m = host.sync_get_shard_membership(1, timeout=5)
    assert set(m.nodes) == {1, 2, 3, 4}
    host.sync_request_delete_replica(1, 4, 0, timeout=5)
    cluster.propose_retrying(host, 1, encode("put", "gone", 3))
    m = host.sync_get_shard_membership(1, timeout=5)
    assert set(m.nodes) == {1, 2, 3} and 4 in m.removed
    assert new.stale_read(1, "gone") is None
    # The removed replica is told (the leader's last word) and says so.
    cluster.wait_for(
        lambda: new.get_node_host_info().shard_info_list[0].is_removed,
        what="replica 4 to know it was removed",
    )
    assert not any(s.is_removed for s in host.get_node_host_info().shard_info_list)
    # A removed id never comes back.
    with pytest.raises(Rejected, match="removed"):
        host.sync_request_add_replica(1, 4, cluster.addresses[4], 0, timeout=5)


def test_non_voting_receives_the_log_and_can_be_promoted(sim_cluster: SimCluster) -> None:
    cluster = sim_cluster
    cluster.start_shard(1, members=[1, 2, 3])
    leader = cluster.host(cluster.leader(1))
    observer = cluster.add_host(4)
    leader.sync_request_add_non_voting(1, 4, cluster.addresses[4], 0, timeout=5)
    cluster.start_replica(4, 1, {}, True, is_non_voting=True)
    cluster.propose_retrying(leader, 1, encode("put", "x", 1))
    cluster.wait_for(lambda: observer.stale_read(1, "x") == 1, what="non-voting replicated")
    m = leader.sync_get_shard_membership(1, 5)
    assert 4 in m.non_votings and 4 not in m.nodes
    leader.sync_request_add_replica(1, 4, cluster.addresses[4], 0, timeout=5)
    m = leader.sync_get_shard_membership(1, 5)
    assert 4 in m.nodes and 4 not in m.non_votings


def test_witness_votes_but_holds_no_data(tmp_path) -> None:  # type: ignore[no-untyped-def]
    c = SimCluster(tmp_path, size=2)
    try:
        c.start_shard(1, members=[1, 2])
        leader_id = c.leader(1)
        leader = c.host(leader_id)
        witness = c.add_host(3)
        leader.sync_request_add_witness(1, 3, c.addresses[3], 0, timeout=5)
        c.start_replica(3, 1, {}, True, is_witness=True)
        c.propose_retrying(leader, 1, encode("put", "w", 1))
        m = leader.sync_get_shard_membership(1, 5)
        assert 3 in m.witnesses
        # With the other data replica down, the witness's vote keeps a quorum.
        other = 2 if leader_id == 1 else 1
        c.stop(other)
        c.propose_retrying(leader, 1, encode("put", "w2", 2))
        assert leader.sync_read(1, "w2", 5) == 2
        with pytest.raises(Exception, match="witness"):
            witness.stale_read(1, "w")
    finally:
        c.close()


def test_ordered_config_change_needs_the_current_id(sim_cluster: SimCluster) -> None:
    cluster = sim_cluster
    cluster.start_shard(1, ordered_config_change=True)
    host = cluster.host(cluster.leader(1))
    m = host.sync_get_shard_membership(1, 5)
    cluster.add_host(4)
    with pytest.raises(Rejected, match="stale"):
        host.sync_request_add_replica(1, 4, cluster.addresses[4], m.config_change_id + 7, 5)
    host.sync_request_add_replica(1, 4, cluster.addresses[4], m.config_change_id, 5)
    assert 4 in host.sync_get_shard_membership(1, 5).nodes


def test_leader_transfer(sim_cluster: SimCluster) -> None:
    cluster = sim_cluster
    cluster.start_shard(1)
    leader = cluster.leader(1)
    target = next(rid for rid in cluster.addresses if rid != leader)
    cluster.propose_retrying(cluster.host(leader), 1, encode("put", "a", 1))
    cluster.host(leader).request_leader_transfer(1, target)
    cluster.wait_for(lambda: cluster.leader(1) == target, what=f"replica {target} leads")
    leader_id, term, valid = cluster.host(target).get_leader_id(1)
    assert (leader_id, valid) == (target, True) and term > 0
    # Asked on a follower, the request travels to the leader.
    follower = next(rid for rid in cluster.addresses if rid != target)
    cluster.host(follower).request_leader_transfer(1, follower)
    cluster.wait_for(lambda: cluster.leader(1) == follower, what=f"replica {follower} leads")
